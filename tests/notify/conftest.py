from __future__ import annotations

import pytest

from tests.notify.fake_slack import FakeSlack


@pytest.fixture
async def slack():
    fake = await FakeSlack().start()
    yield fake
    await fake.stop()
