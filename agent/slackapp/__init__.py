"""Acting on alerts from Slack: Acknowledge, Silence, Unsilence and Chart buttons.

- ``model``: the action model (a press, its target, its outcome), parsed from Slack payloads.
- ``store``: targets, acknowledgements and the action log in the history database; also
  the status page's ``AckReader``.
- ``handlers``: applying a press, once, over the action store and the silence store.
- ``policy``: who may act (user IDs, user groups).
- ``blocks``: the buttons and texts as Block Kit, for the notifier.
- ``socket``: Socket Mode (no public URL); ``http``: HTTP mode (signed requests).
- ``respond``: ephemeral answers to the presser; ``service``: the component tying them up.
- ``config``: the ``slack_actions:`` section.
"""
