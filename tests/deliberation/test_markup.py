import html
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from deliberation.markup import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    LINK_REL,
    MAX_NESTING,
    MAX_SOURCE_CHARS,
    as_safe_html,
    plain_text,
    render_markdown,
)

TAG_NAME = re.compile(r"<\s*([a-zA-Z0-9]+)")
OPENING_TAG = re.compile(r"<([a-zA-Z0-9]+)((?:\s[^>]*)?)/?>")
ATTRIBUTE = re.compile(r'\s([^\s="]+)="([^"]*)"')
SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

XSS_CORPUS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](java&#x09;script:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x]( javascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x]: javascript:alert(1)\n\n[x]",
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "[x](vbscript:msgbox(1))",
    "![x](https://evil.example/a.png)",
    "![x](javascript:alert(1))",
    '<a href="x" hx-get="/evil">x</a>',
    "<iframe src=x></iframe>",
    "<form action=x><button>go</button></form>",
    "<base href=x>",
    "<svg onload=alert(1)>",
    "<math><mi xlink:href=javascript:alert(1)>x</mi></math>",
    "<javascript:alert(1)>",
    "<style>body{display:none}</style>",
    '<div style="position:fixed" class="x" id="y" onclick="alert(1)">x</div>',
    "```html\n<script>alert(1)</script>\n```",
    "`<img src=x onerror=alert(1)>`",
    '[x](https://ok.example "title\\" onmouseover=\\"alert(1)")',
]
FORBIDDEN_IN_MARKUP = [
    "<script", "onerror", "javascript:", "<img", "<iframe", "<form", "<base", "<svg", "hx-",
    "<math", "<style", "style=", "class=", "id=", "onclick", "onload", "onmouseover",
    "data:", "vbscript:",
]  # fmt: skip
MARKDOWN_PIECES = [
    "# ", "## ", "- ", "1. ", "> ", "    ", "```", "`", "*", "_", "**", "~~", "|", "---",
    "[", "]", "(", ")", "!", "<", ">", "&", "#", ";", ":", "\"", "'", "=", "\n", "\n\n", " ",
    "javascript", "http://a.example", "mailto:a@b.example", "data:", "script", "img", "a",
    "href", "onerror", "hx-get", "\u202e", "\u200b", "电梯", "{{", "}}", "&#106;", "&#x09;",
]  # fmt: skip
markdownish = st.lists(st.sampled_from(MARKDOWN_PIECES), max_size=60).map("".join)


def tags(output: str) -> list[str]:
    """Each tag with its attribute values blanked, but hrefs kept: words inside a title
    are only text."""
    blank = re.compile(r'(\s(?!href=)[^\s="]+)="[^"]*"')
    return [blank.sub(r'\1=""', tag) for tag in re.findall(r"<[^>]*>", output)]


def scheme(href: str) -> str | None:
    """The scheme a browser would see, after its own clean-up of the URL."""
    url = html.unescape(href).strip("".join(map(chr, range(0x21))))
    found = SCHEME.match(re.sub(r"[\t\n\r]", "", url))
    return found.group(1).lower() if found else None


def assert_allow_listed(output: str) -> None:
    assert set(TAG_NAME.findall(output)) <= ALLOWED_TAGS
    for name, attributes in OPENING_TAG.findall(output):
        found = dict(ATTRIBUTE.findall(attributes))
        allowed = ALLOWED_ATTRIBUTES.get(name, frozenset())
        if name == "a":
            assert found.pop("rel") == LINK_REL
            assert scheme(found.get("href", "")) in (None, "http", "https", "mailto")
        assert set(found) <= allowed, (name, found)
    for character in INVISIBLE:
        assert character not in output


@pytest.mark.parametrize("source", XSS_CORPUS)
def test_hostile_markup_never_becomes_markup(source):
    output = render_markdown(source)

    for tag in tags(output):
        for marker in FORBIDDEN_IN_MARKUP:
            assert marker not in tag.lower(), (source, output)
    assert_allow_listed(output)


def test_raw_html_is_shown_as_text():
    assert render_markdown("<script>alert(1)</script>") == (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    )


def test_template_syntax_stays_literal():
    assert render_markdown("{{7*7}} {% if 1 %}") == "<p>{{7*7}} {% if 1 %}</p>"


def test_image_becomes_a_link_to_its_address():
    output = render_markdown('![路灯坏了](https://photos.example/lamp.png "5号楼")')

    assert output == (
        '<p><a href="https://photos.example/lamp.png" title="5号楼" rel="nofollow noopener ugc">'
        "路灯坏了</a></p>"
    )


def test_image_inside_a_link_becomes_its_alt_text():
    output = render_markdown("[![lamp](https://photos.example/a.png)](https://ok.example)")

    assert output == '<p><a href="https://ok.example" rel="nofollow noopener ugc">lamp</a></p>'


def test_image_with_a_forbidden_scheme_loses_its_address():
    output = render_markdown("![x](data:image/png;base64,AAAA)")

    assert "<img" not in output
    assert "data:" not in "".join(tags(output))


def test_bidi_and_zero_width_characters_are_removed():
    source = "1\u202e2\u2066号\u2069楼\u200b电\u200d梯\ufeff &#8238;&#x200B;x"

    assert render_markdown(source) == "<p>12号楼电梯 x</p>"
    assert plain_text(source) == "12号楼电梯 x"


def test_links_get_rel_and_keep_title():
    output = render_markdown('[物业公告](https://wy.example/notice?id=1&a=2 "公告")')

    assert output == (
        '<p><a href="https://wy.example/notice?id=1&amp;a=2" title="公告" '
        'rel="nofollow noopener ugc">物业公告</a></p>'
    )


@pytest.mark.parametrize(
    "source, href",
    [
        ("<https://wy.example>", "https://wy.example"),
        ("[mail](mailto:wy@wy.example)", "mailto:wy@wy.example"),
        ("[proposal](/proposals/12)", "/proposals/12"),
    ],
)
def test_allowed_links_keep_their_address(source, href):
    assert f'href="{href}"' in render_markdown(source)


def test_ftp_link_keeps_its_words_but_not_its_address():
    assert render_markdown("[f](ftp://files.example/x)") == (
        '<p><a rel="nofollow noopener ugc">f</a></p>'
    )


def test_headings_one_and_two_become_h3():
    output = render_markdown("# 一\n\n## 二\n\n### 三\n\n#### 四\n\n###### 六")

    assert output == "<h3>一</h3>\n<h3>二</h3>\n<h3>三</h3>\n<h4>四</h4>\n<h6>六</h6>"


def test_emphasis_strikethrough_and_code():
    output = render_markdown("*轻* **重** ~~删~~ `code`")

    assert output == "<p><em>轻</em> <strong>重</strong> <s>删</s> <code>code</code></p>"


def test_fenced_code_loses_its_language_class():
    assert render_markdown("```python\nx = 1\n```") == "<pre><code>x = 1\n</code></pre>"


def test_lists_and_quotes():
    output = render_markdown("- 电梯\n- 门禁\n\n1. 一\n2. 二\n\n> 引用\n\n---")

    assert output == (
        "<ul>\n<li>电梯</li>\n<li>门禁</li>\n</ul>\n<ol>\n<li>一</li>\n<li>二</li>\n</ol>\n"
        "<blockquote>\n<p>引用</p>\n</blockquote>\n<hr>"
    )


def test_table_without_alignment_styles():
    output = render_markdown("| 楼 | 户数 |\n|:--|--:|\n| 3号 | 48 |")

    assert output == (
        "<table>\n<thead>\n<tr>\n<th>楼</th>\n<th>户数</th>\n</tr>\n</thead>\n"
        "<tbody>\n<tr>\n<td>3号</td>\n<td>48</td>\n</tr>\n</tbody>\n</table>"
    )


def test_chinese_text_and_punctuation_stay_intact():
    source = "关于３号楼电梯维修的提议：费用约５万元，请大家讨论。"

    assert render_markdown(source) == f"<p>{source}</p>"


def test_hard_line_break():
    assert render_markdown("第一行  \n第二行") == "<p>第一行<br>\n第二行</p>"


@pytest.mark.parametrize(
    "bomb",
    [
        "- " * 5000,
        "> " * 5000,
        "[" * 20000,
        "- " * 50000,
        "> " * 50000,
        "[" * 100000,
        "![" * 50000,
        "*a" * 50000,
        "[a](" * 25000,
        "<" * 100000,
        "\n".join("  " * depth + "- x" for depth in range(2000)),
        "> " * 100 + "深处",
    ],
    ids=lambda bomb: f"{bomb[:6]!r}x{len(bomb)}",
)
def test_adversarial_input_renders_bounded(bomb):
    output = render_markdown(bomb)

    assert len(output) <= 5 * MAX_SOURCE_CHARS
    assert output.count("<blockquote>") <= MAX_NESTING
    assert output.count("<ul>") <= MAX_NESTING
    assert_allow_listed(output)


def test_source_beyond_the_limit_is_not_rendered():
    output = render_markdown("a" * MAX_SOURCE_CHARS + "TAIL")

    assert "TAIL" not in output
    assert output.count("a") == MAX_SOURCE_CHARS


@settings(max_examples=300, database=None)
@given(st.text())
def test_any_text_renders_only_allow_listed_markup(source):
    assert_allow_listed(render_markdown(source))


@settings(max_examples=500, database=None)
@given(markdownish)
def test_markdown_like_text_renders_only_allow_listed_markup(source):
    output = render_markdown(source)

    assert_allow_listed(output)
    for tag in tags(output):
        for marker in FORBIDDEN_IN_MARKUP:
            assert marker not in tag.lower(), (source, output)


def test_plain_text_drops_markup():
    source = "# 电梯维修\n\n**费用**约 [五万元](https://x.example)。\n\n- 一\n- 二"

    assert plain_text(source) == "电梯维修 费用约 五万元。 一 二"


def test_plain_text_is_cut_with_an_ellipsis():
    assert plain_text("电梯" * 200, limit=10) == "电梯电梯电梯电梯电…"
    assert len(plain_text("word " * 100)) == 200


def test_plain_text_keeps_short_text_whole():
    assert plain_text("短", limit=1) == "短"


def test_plain_text_keeps_html_as_words_for_escaping_later():
    assert plain_text("<b>x</b> & y") == "<b>x</b> & y"


def test_plain_text_of_an_image_is_its_alt_text():
    assert plain_text("![破损的路灯](https://x.example/a.png)") == "破损的路灯"


@settings(max_examples=300, database=None)
@given(markdownish)
def test_rendered_html_passes_the_second_cleaning_unchanged(source):
    output = render_markdown(source)

    assert as_safe_html(output) == output


def test_safe_html_is_marked_safe_for_templates():
    assert isinstance(as_safe_html(render_markdown("*x*")), Markup)


@pytest.mark.parametrize(
    "stored",
    [
        '<p onclick="alert(1)">x<script>alert(1)</script></p>',
        '<a href="javascript:alert(1)" hx-get="/evil" class="c">x</a>',
        '<img src="x" onerror="alert(1)"><iframe src="x"></iframe><h1>big</h1>',
        "<p>\u202eevil</p>",
    ],
)
def test_tampered_stored_html_is_cleaned_before_display(stored):
    shown = as_safe_html(stored)

    assert_allow_listed(shown)
    assert "alert" not in shown
