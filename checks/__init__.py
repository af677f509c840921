"""Check plugins; each folder is one check type, found through the 'mlwarden.checks' entry points."""
