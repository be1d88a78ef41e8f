"""Masking for roles without the need: names and phone numbers, also inside free text."""

from __future__ import annotations

import pytest

from events.privacy import mask_event, mask_free_text


def test_the_events_people_are_masked_wherever_the_text_names_them() -> None:
    event = {"reporter": "欧阳明", "handler": "赵刚",
             "description": "欧阳明称赵刚未到场，欧阳明再次反映",
             "feedback": "赵刚已处理，欧阳明满意",
             "history": [{"actor": "陈晨", "reason": "陈晨派给赵刚"}],
             "routing": {"grid_worker": "李强、王芳"}}
    masked = mask_event(event)
    assert masked["description"] == "欧**称赵*未到场，欧**再次反映"
    assert masked["feedback"] == "赵*已处理，欧**满意"
    assert masked["history"] == [{"actor": "陈*", "reason": "陈*派给赵*"}]
    assert event["description"].startswith("欧阳明")        # a copy: the stored one stays


@pytest.mark.parametrize(("text", "want"), [
    ("联系人张三", "联系人张*"),
    ("当事人：李四、王五", "当事人：李*、王五"),
    ("户主为王小明。", "户主为王**。"),
    ("举报人 欧阳娜娜称", "举报人 欧***称"),
    ("联系人李四电话13812345678", "联系人李*电话138****5678"),
    ("路灯不亮", "路灯不亮"),
])
def test_a_name_after_a_word_that_introduces_one_is_masked(text: str, want: str) -> None:
    assert mask_free_text(text) == want


def test_sources_and_single_characters_are_not_names() -> None:
    text = "citizen 报告：王家巷积水"
    assert mask_free_text(text, ["citizen", "王"]) == text
