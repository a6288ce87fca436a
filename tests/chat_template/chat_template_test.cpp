#include "chat_template/chat_template.h"

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

using nlohmann::json;

const char kBos[] = "<｜begin▁of▁sentence｜>";
const char kEos[] = "<｜end▁of▁sentence｜>";

// DeepSeek-V3's published chat template (tokenizer_config.json), one line as shipped.
const char kDeepSeekV3[] =
    R"JJ({% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %})JJ";

// DeepSeek-R1 style: drops reasoning before '</think>' from history, opens '<think>\n'.
const char kDeepSeekR1[] =
    R"JJ({% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and 'tool_calls' in message %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls'] %}{%- if not ns.is_first %}{%- if message['content'] is none %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- endif %}{%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- endif %}{%- endfor %}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- if message['role'] == 'assistant' and 'tool_calls' not in message %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\n'}}{% endif %})JJ";

// Qwen2.5-Instruct's multi-line template (exercises trim_blocks/lstrip_blocks and '-').
const char kQwen25[] = R"JJ({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
)JJ";

const char kChatML[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

json conversation() {
  return json::parse(R"([
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And 3+3?"}
  ])");
}

std::string apply(const char* tmpl, const json& messages, bool gen, const json& extra = nullptr) {
  auto t = ChatTemplate::parse(tmpl);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return "<parse error>";
  auto r = apply_chat_template(*t, messages, gen, kBos, kEos, extra);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : "<render error>";
}

std::string render(const std::string& tmpl, const json& ctx = json::object()) {
  auto t = ChatTemplate::parse(tmpl);
  if (!t.ok()) return "PARSE: " + std::string(t.status().message());
  auto r = t->render(ctx);
  if (!r.ok()) return "RENDER: " + std::string(r.status().message());
  return *r;
}

TEST(ChatTemplate, DeepSeekV3MultiTurn) {
  EXPECT_EQ(apply(kDeepSeekV3, conversation(), true),
            "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>What is 2+2?"
            "<｜Assistant｜>4.<｜end▁of▁sentence｜><｜User｜>And 3+3?<｜Assistant｜>");
  EXPECT_EQ(apply(kDeepSeekV3, conversation(), false),
            "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>What is 2+2?"
            "<｜Assistant｜>4.<｜end▁of▁sentence｜><｜User｜>And 3+3?");
}

TEST(ChatTemplate, DeepSeekV3SystemPromptsJoinAndNoSystem) {
  json m = json::parse(R"([{"role":"system","content":"A"},{"role":"system","content":"B"},
                           {"role":"user","content":"hi"}])");
  EXPECT_EQ(apply(kDeepSeekV3, m, true),
            "<｜begin▁of▁sentence｜>A\n\nB<｜User｜>hi<｜Assistant｜>");
  json u = json::parse(R"([{"role":"user","content":"hi"}])");
  EXPECT_EQ(apply(kDeepSeekV3, u, true), "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜>");
}

TEST(ChatTemplate, DeepSeekV3ToolCalls) {
  json m = json::parse(R"([
    {"role":"user","content":"Weather in Paris and Rome?"},
    {"role":"assistant","content":null,"tool_calls":[
      {"type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},
      {"type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Rome\"}"}}]},
    {"role":"tool","content":"22C"},
    {"role":"tool","content":"25C"},
    {"role":"assistant","content":"Paris 22C, Rome 25C."},
    {"role":"user","content":"Thanks"}
  ])");
  EXPECT_EQ(apply(kDeepSeekV3, m, true),
            "<｜begin▁of▁sentence｜><｜User｜>Weather in Paris and Rome?"
            "<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_"
            "weather\n"
            "```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>"
            "\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
            "```json\n{\"city\": "
            "\"Rome\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>"
            "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>22C<｜tool▁output▁end｜>"
            "\n<｜tool▁output▁begin｜>25C<｜tool▁output▁end｜>"
            "<｜tool▁outputs▁end｜>Paris 22C, Rome 25C.<｜end▁of▁sentence｜>"
            "<｜User｜>Thanks<｜Assistant｜>");
  // Ending on tool output: outputs are closed and no generation prompt is added.
  json t = json::parse(R"([
    {"role":"user","content":"q"},
    {"role":"assistant","content":null,"tool_calls":[
      {"type":"function","function":{"name":"f","arguments":"{}"}}]},
    {"role":"tool","content":"r"}])");
  EXPECT_EQ(apply(kDeepSeekV3, t, true),
            "<｜begin▁of▁sentence｜><｜User｜>q<｜Assistant｜><｜tool▁calls▁begin｜>"
            "<｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```<｜tool▁call▁end｜>"
            "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>r<｜tool▁output▁end｜>"
            "<｜tool▁outputs▁end｜>");
}

TEST(ChatTemplate, DeepSeekR1StripsThinkingAndOpensThink) {
  json m = json::parse(R"([
    {"role":"user","content":"2+2?"},
    {"role":"assistant","content":"<think>\nadd them\n</think>\n\n4"},
    {"role":"user","content":"3+3?"}])");
  EXPECT_EQ(apply(kDeepSeekR1, m, true),
            "<｜begin▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜>\n\n4<｜end▁of▁sentence｜>"
            "<｜User｜>3+3?<｜Assistant｜><think>\n");
  EXPECT_EQ(apply(kDeepSeekR1, m, false),
            "<｜begin▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜>\n\n4<｜end▁of▁sentence｜>"
            "<｜User｜>3+3?");
}

TEST(ChatTemplate, Qwen25DefaultSystemAndGenerationPrompt) {
  json m = json::parse(R"([{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"},
                           {"role":"user","content":"Bye"}])");
  const std::string head =
      "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
      "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!"
      "<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n";
  EXPECT_EQ(apply(kQwen25, m, false), head);
  EXPECT_EQ(apply(kQwen25, m, true), head + "<|im_start|>assistant\n");
}

TEST(ChatTemplate, Qwen25SystemMessageAndToolCalls) {
  EXPECT_EQ(apply(kQwen25, conversation(), true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "What is 2+2?<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n<|im_start|>user\n"
            "And 3+3?<|im_end|>\n<|im_start|>assistant\n");
  nlohmann::ordered_json m = nlohmann::ordered_json::parse(R"([
    {"role":"user","content":"Weather?"},
    {"role":"assistant","content":"","tool_calls":[{"type":"function",
      "function":{"name":"get_weather","arguments":{"city":"Paris","unit":"C"}}}]},
    {"role":"tool","content":"22"},{"role":"tool","content":"sunny"}])");
  nlohmann::ordered_json extra = nlohmann::ordered_json::parse(
      R"({"tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}]})");
  auto t = ChatTemplate::parse(kQwen25);
  ASSERT_TRUE(t.ok()) << t.status();
  auto r = apply_chat_template(*t, m, true, "", "<|im_end|>", extra);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.\n\n# Tools\n\nYou may call one or more functions to assist with the user "
            "query.\n\nYou are provided with function signatures within <tools></tools> XML "
            "tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
            "\"parameters\": {}}}\n</tools>\n\nFor each function call, return a json object with "
            "function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
            "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>"
            "<|im_end|>\n<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n"
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", "
            "\"unit\": \"C\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n22\n"
            "</tool_response>\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplate, PlainChatML) {
  EXPECT_EQ(apply(kChatML, conversation(), false),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "What is 2+2?<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n<|im_start|>user\n"
            "And 3+3?<|im_end|>\n");
  EXPECT_EQ(apply(kChatML, conversation(), true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "What is 2+2?<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n<|im_start|>user\n"
            "And 3+3?<|im_end|>\n<|im_start|>assistant\n");
}

TEST(Jinja, ExpressionsAndLiterals) {
  EXPECT_EQ(
      render("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }}"),
      "7 3 -4 2 3.5 1024");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }} {{ [1, 'x', true, none] }} {{ {'k': 1.0} }}"),
            "a1None [1, 'x', True, None] {'k': 1.0}");
  EXPECT_EQ(render(R"({{ 'it\'s\t"q"\n' | tojson }})"), R"("it's\t\"q\"\n")");
  EXPECT_EQ(render("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'b' in 'abc' }} {{ 4 not in [1, 2] }}"),
            "True False True True");
  EXPECT_EQ(render("{{ 'y' if x else 'n' }}{{ 'z' if not x }}", {{"x", false}}), "nz");
  EXPECT_EQ(render("{{ x and y }} {{ x or y }} {{ not x }}", {{"x", 0}, {"y", "s"}}), "0 s True");
  EXPECT_EQ(
      render("{{ xs[1:] }} {{ xs[-1] }} {{ xs[::-1] }} {{ 'hello'[1:3] }}", {{"xs", {1, 2, 3}}}),
      "[2, 3] 3 [3, 2, 1] el");
  EXPECT_EQ(render("{{ 0.1 + 0.2 }} {{ 1e-5 }} {{ 1e16 }} {{ 2.5e3 }}"),
            "0.30000000000000004 1e-05 1e+16 2500.0");
}

TEST(Jinja, FiltersTestsAndMethods) {
  EXPECT_EQ(
      render("{{ '  a b  ' | trim }}|{{ 'abc' | upper }}|{{ 'ABC' | lower }}|{{ [1,2] | length }}"),
      "a b|ABC|abc|2");
  EXPECT_EQ(
      render("{{ x | default('d') }} {{ '' | default('e', true) }} {{ [1,2,3] | join('-') }}"),
      "d e 1-2-3");
  EXPECT_EQ(render("{{ 'aXbX' | replace('X', '.') }} {{ 5 | string ~ '!' }}"), "a.b. 5!");
  EXPECT_EQ(render("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ "
                   "'x</think>y'.split('</think>')[-1] }}"),
            "['a', 'b', '', 'c'] ['a', 'b'] y");
  EXPECT_EQ(
      render("{{ 'hello'.startswith('he') }} {{ 'hello'.endswith('x') }} {{ '--a--'.strip('-') }}"
             "{{ '  a'.lstrip() }}{{ 'b  '.rstrip() }}"),
      "True False aab");
  EXPECT_EQ(render("{{ x is defined }} {{ none is none }} {{ 's' is string }} {{ 1 is not string }}"
                   " {{ 3 is odd }} {{ 6 is divisibleby 3 }}"),
            "False True True True True True");
  EXPECT_EQ(render("{{ d.items() | list }} {{ d.get('b', 9) }} {{ d | tojson }}",
                   json::parse(R"({"d":{"a":1}})")),
            "[['a', 1]] 9 {\"a\": 1}");
  EXPECT_EQ(
      render("{{ xs | selectattr('ok') | map(attribute='n') | join(',') }}",
             json::parse(R"({"xs":[{"ok":true,"n":"a"},{"ok":false,"n":"b"},{"ok":1,"n":"c"}]})")),
      "a,c");
}

TEST(Jinja, StatementsScopingAndWhitespace) {
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}{{ x }}{% if loop.first %}F{% endif %}"
                   "{% if loop.last %}L{{ loop.length }}{% endif %},{% endfor %}",
                   {{"xs", {"a", "b", "c"}}}),
            "1aF,2b,3cL3,");
  // set inside a loop does not leak; namespace does.
  EXPECT_EQ(render("{% set n = 0 %}{% set ns = namespace(n=0) %}{% for x in [1,2,3] %}"
                   "{% set n = n + x %}{% set ns.n = ns.n + x %}{% endfor %}{{ n }} {{ ns.n }}"),
            "0 6");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
                   json::parse(R"({"d":{"a":1,"b":2}})")),
            "a=1;b=2;");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in [1,2,3,4] if x is even %}{{ x }}{% endfor %}"), "24");
  EXPECT_EQ(
      render("{% for x in [1,2,3,4] %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
      "12");
  EXPECT_EQ(render("{% macro greet(name, p='Hi') %}{{ p }} {{ name }}{% endmacro %}"
                   "{{ greet('A') }}/{{ greet('B', p='Yo') }}"),
            "Hi A/Yo B");
  EXPECT_EQ(render("{% set s %}in{{ 1 }}{% endset %}[{{ s }}]"), "[in1]");
  EXPECT_EQ(render("a  {{- ' b ' -}}  c {# note #} d"), "a b c  d");
  // trim_blocks + lstrip_blocks, and one trailing newline dropped.
  EXPECT_EQ(render("<\n  {% if true %}\n    x\n  {% endif %}\n>\n"), "<\n    x\n>");
  EXPECT_EQ(render("{% raw %}{{ not parsed }}{% endraw %}"), "{{ not parsed }}");
}

TEST(Jinja, ErrorsCarryPositions) {
  auto bad = ChatTemplate::parse("line1\n{% if x %}oops");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 2"), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("endif"), std::string::npos) << bad.status();

  auto unk = ChatTemplate::parse("{{ 1 + }}");
  EXPECT_FALSE(unk.ok());
  EXPECT_FALSE(ChatTemplate::parse("{% foo %}").ok());
  EXPECT_FALSE(ChatTemplate::parse("{{ 'unterminated }}").ok());

  auto t = ChatTemplate::parse("ok\n  {{ raise_exception('Only user and assistant roles!') }}");
  ASSERT_TRUE(t.ok());
  auto r = t->render(json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("Only user and assistant roles!"), std::string::npos);
  EXPECT_NE(r.status().message().find("line 2, column 6"), std::string::npos) << r.status();

  EXPECT_NE(render("{{ nosuch(1) }}").find("RENDER:"), std::string::npos);
  EXPECT_NE(render("{{ x.y }}").find("undefined"), std::string::npos);
  EXPECT_NE(render("{{ 'a' + 1 }}").find("RENDER:"), std::string::npos);
  EXPECT_NE(render("{{ 1 // 0 }}").find("RENDER:"), std::string::npos);
  EXPECT_NE(render("{{ 'x' * 100000000000 }}").find("RENDER:"), std::string::npos);
  EXPECT_NE(
      render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
          .find("RENDER:"),
      std::string::npos);
  EXPECT_NE(render("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}").find("RENDER:"),
            std::string::npos);
  std::string deep(5000, '(');
  EXPECT_NE(render("{{ " + deep + " }}").find("PARSE:"), std::string::npos);
  EXPECT_FALSE(apply_chat_template(*t, json::object(), true, "", "", nullptr).ok());
}

// Random mutations of real templates and random message JSON must never crash.
TEST(Jinja, FuzzNeverCrashes) {
  std::mt19937 rng(1234);
  const std::string alphabet = "{}%#-+()[]'\".,:|~=<>!*/ \n abcxyzifendforsetin0123";
  const char* bases[] = {kDeepSeekV3, kDeepSeekR1, kQwen25, kChatML};
  int parsed = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string src = bases[iter % 4];
    int edits = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < edits && !src.empty(); ++k) {
      size_t pos = rng() % src.size();
      switch (rng() % 3) {
        case 0:
          src.erase(pos, 1 + rng() % 8);
          break;
        case 1:
          src.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
        default:
          src[pos] = alphabet[rng() % alphabet.size()];
      }
    }
    auto t = ChatTemplate::parse(src);
    if (!t.ok()) continue;
    ++parsed;
    json msgs = json::array();
    int n = static_cast<int>(rng() % 5);
    const char* roles[] = {"system", "user", "assistant", "tool", "weird"};
    for (int i = 0; i < n; ++i) {
      json m = {{"role", roles[rng() % 5]}};
      switch (rng() % 4) {
        case 0:
          m["content"] = "text</think>more";
          break;
        case 1:
          m["content"] = nullptr;
          break;
        case 2:
          m["content"] = json::array({1, 2});
          break;
        default:
          break;
      }
      if (rng() % 3 == 0)
        m["tool_calls"] =
            json::parse(R"([{"type":"function","function":{"name":"f","arguments":"{}"}}])");
      msgs.push_back(m);
    }
    (void)apply_chat_template(*t, msgs, rng() % 2 == 0, kBos, kEos, nullptr);
  }
  EXPECT_GT(parsed, 100);
}

}  // namespace
}  // namespace moeserve
