"""The action-protocol grammar of constrained decoding, against the real protocol parser."""

import json

import pytest

from knowgen.agents.grammar import ReplyGrammar, allowed_tokens, answer_schema, tool_call_schema
from knowgen.agents.turn_rules import (
    answer_due,
    description_examples,
    earlier_arguments,
    image_searches_counted,
    repeated_tool,
    reply_rules,
)
from knowgen.envs.observations import tools_closed
from knowgen.envs.prompt import TOOL_SCHEMAS
from knowgen.envs.protocol import MAX_REFERENCES, format_answer, format_tool_call, parse_action
from knowgen.envs.views import compact_observation
from knowgen.errors import ConfigError
from knowgen.types import Answer, ReferenceImage

IDS = ["IMG_001", "IMG_002", "IMG_003"]


def grammar(**kwargs):
    return ReplyGrammar(tools=kwargs.get("tools", TOOL_SCHEMAS), answer_ids=kwargs.get("ids", IDS))


def reads(text, **kwargs):
    g = grammar(**kwargs)
    return g.feed(text) and g.complete


@pytest.mark.parametrize("name,args", [
    ("search", {"queries": ["capital Paris", "currency EUR"]}),
    ("image_search", {"query": "Flag of Peru", "top_k": 3}),
    ("browse", {"url": "https://encyclopedia.world.invalid/wiki/Peru", "query": "capital"}),
    ("fetch_image", {"url": "https://media.world.invalid/flag-pe.png"}),
])
def test_every_tool_call_the_protocol_writes_is_read_to_the_end(name, args):
    text = format_tool_call(name, args, think="Look it up.")
    assert parse_action(text).kind == "tool"
    assert reads(text)
    assert reads(text.replace("\n", ""))  # whitespace between the parts is optional


def test_answers_with_escaped_quotes_and_references_are_read_to_the_end():
    answer = Answer('A poster of the flag with the words "PERU" \\ below.',
                    (ReferenceImage("IMG_001", "flag"), ReferenceImage("IMG_003", "")))
    text = format_answer(answer, think="Done.")
    assert parse_action(text, IDS).kind == "answer"
    assert reads(text)


@pytest.mark.parametrize("text,why", [
    ('<tool_call>{"name": "search", "arguments": {"queries": ["Peru"}}</tool_call>',
     "a list closed with a brace"),
    ('<tool_call>{"name": "lookup", "arguments": {}}</tool_call>', "an unknown tool"),
    ('<tool_call>{"name": "search", "arguments": {"query": "Peru"}}</tool_call>',
     "an argument the named tool does not take"),
    ('<tool_call>{"name": "search", "arguments": {"queries": []}}</tool_call>',
     "an empty query list"),
    ('<tool_call>{"name": "image_search", "arguments": {"query": ""}}</tool_call>',
     "an empty query"),
    (('<tool_call>{"name": "image_search", "arguments": {"query": "a", "top_k": 2.5}}'
     '</tool_call>'), "a fractional top_k"),
    ('<answer>{"gen_prompt": "x", "reference_images": [{"img_id": "IMG_009"}]}</answer>',
     "an image id no tool result showed"),
    (('<answer>{"gen_prompt": "x", "reference_images": [{"img_id": "IMG_001"}, '
     '{"img_id": "IMG_001"}]}</answer>'), "the same reference twice"),
    ('<answer>{"gen_prompt": "x", "reference_images": []}</tool_call>', "the wrong closing tag"),
    (('<think>a</think><tool_call>{"name": "search", "arguments": {"queries": ["a"]}}'
     '</tool_call><answer>'), "text after the turn"),
    ('<think>a <tool_call>', "an action inside the think block"),
    ('<answer>{"gen_prompt": "line\nbreak", "reference_images": []}</answer>',
     "a raw line break inside a string"),
    ('<answer>{"gen_prompt": "x </answer>', "a closing tag inside a string"),
    ("Sure! <answer>", "text before the turn"),
])
def test_what_the_protocol_refuses_is_refused_as_it_is_written(text, why):
    assert not reads(text), why
    assert parse_action(text, ["IMG_001"]).kind == "invalid", why


def test_the_grammar_is_stricter_than_the_parser_where_small_models_slip():
    no_refs = '<answer>{"gen_prompt": "Peru"}</answer>'
    assert parse_action(no_refs).kind == "answer" and not reads(no_refs)
    assert reads('<answer>{"gen_prompt": "Peru", "reference_images": []}</answer>')
    blanks = ('<think>a</think>\n\n\n<tool_call>{"name": "search", "arguments": '
              '{"queries": ["a"]}}</tool_call>')
    assert parse_action(blanks).kind == "tool" and not reads(blanks)
    assert reads('<think>a \n\n\n b</think>\n\n<answer>{"gen_prompt": "x  \\n\\n  y", '
                 '"reference_images": []}</answer>')  # free text keeps its blanks


def test_a_refused_piece_leaves_the_reading_unchanged_for_accepts():
    g = grammar()
    assert g.feed('<think>x</think>\n\n<tool_call>\n{"name": "search", "arguments": '
                  '{"queries": ["Peru')
    assert not g.accepts('"}}')
    assert g.accepts('"]}}') and g.accepts('", "Lima"]}}\n</tool_call>')
    assert g.feed('"]}}\n</tool_call>') and g.complete


def test_tools_and_ids_bound_the_schemas():
    answer_only = ReplyGrammar(tools=(), answer_ids=["IMG_002"])
    assert not answer_only.accepts("<tool_call>")
    assert answer_only.accepts('<answer>{"gen_prompt": "x", "reference_images": '
                               '[{"img_id": "IMG_002"}]}</answer>')
    assert answer_schema(["IMG_001"] * 9)["properties"]["reference_images"]["maxItems"] == 1
    many = [f"IMG_{i:03d}" for i in range(1, 9)]
    refs = ", ".join(json.dumps({"img_id": i}) for i in many[:MAX_REFERENCES + 1])
    g = ReplyGrammar(answer_ids=many)
    assert not g.feed(f'<answer>{{"gen_prompt": "x", "reference_images": [{refs}]}}</answer>')
    schema = tool_call_schema(TOOL_SCHEMAS)
    assert schema["properties"]["name"]["enum"] == sorted(t["function"]["name"]
                                                          for t in TOOL_SCHEMAS)


def test_allowed_tokens_keep_the_likeliest_valid_ones_in_order():
    texts = ['"}}', '"]}}', "\n</tool_call>", " Lima", "<|im_end|>", "", '"]']
    g = grammar()
    g.feed('<think>x</think><tool_call>{"name": "search", "arguments": {"queries": ["Peru')
    ranked = [4, 0, 5, 1, 3, 6, 2]
    assert allowed_tokens(g, ranked, texts, end_id=4) == [1, 3, 6]
    assert allowed_tokens(g, ranked, texts, end_id=4, keep=1) == [1]
    assert allowed_tokens(g, [99, *ranked], texts, end_id=4) == [1, 3, 6]  # padded vocabulary
    g.feed('"]}}</tool_call>')
    assert allowed_tokens(g, ranked, texts, end_id=4) == [4]


def test_the_logits_processor_masks_what_breaks_the_turn():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from knowgen.agents.transformers_backend import _grammar_logits

    texts = ['"}}', '"]}}', "\n</tool_call>", " Lima", "<|im_end|>", "<tool_call>", "{"]
    start = grammar()
    start.feed('<think>x</think>')
    processors = _grammar_logits(torch, start, texts, end_id=4, prompt_length=2, keep=20)
    prefix = '{"name": "search", "arguments": {"queries": ["Peru'
    texts.append(prefix)
    ids = torch.tensor([[9, 9, 5, len(texts) - 1]])
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 0.0, 0.0]])
    out = processors(ids, scores.clone())
    assert out[0].argmax().item() == 1  # '"]}}' instead of the likelier '"}}'
    assert torch.isinf(out[0, [0, 2, 4, 5, 7]]).all()
    assert out[0, 3] == 2.0 and out[0, 6] == 0.0  # ' Lima' and '{' may go on the query
    done = processors(torch.tensor([[9, 9, 5, len(texts) - 1, 1, 2]]), scores.clone())
    assert done[0].argmax().item() == 4 and torch.isinf(done[0, :4]).all()


def test_a_sampled_step_skips_allowed_tokens_it_could_almost_never_draw():
    """Past the top 64, a sampled step looks only as far as the probability reaches;
    greedy, and a step with nothing allowed there, still find the likeliest allowed token
    wherever it ranks."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from knowgen.agents.transformers_backend import _TAIL_MASS, _grammar_logits

    filler = 80  # '"}}' would close the query wrongly: never allowed
    texts = ['"}}'] * filler + [" Lima", " Cusco", "<think>x</think>",
                                '<tool_call>{"name": "search", "arguments": {"queries": ["Peru']
    ids = torch.tensor([[9, len(texts) - 2, len(texts) - 1]])
    lima, cusco = filler, filler + 1
    scores = torch.full((1, len(texts)), -40.0)
    scores[0, :filler], scores[0, lima], scores[0, cusco] = 10.0, 3.0, -30.0
    probs = torch.softmax(scores[0], -1)
    assert probs[lima] > _TAIL_MASS > probs[cusco]

    def step(keep, logits):
        start = grammar()
        return _grammar_logits(torch, start, texts, end_id=len(texts), prompt_length=1,
                               keep=keep)(ids, logits.clone())[0]

    sampled = step(20, scores)
    assert sampled[lima] == 3.0 and torch.isinf(sampled[cusco])
    assert torch.isinf(sampled[:filler]).all()
    assert step(1, scores).argmax().item() == lima
    scores[0, lima] = -40.0  # only ' Cusco' is left, far in the tail
    for keep in (1, 20):
        out = step(keep, scores)
        assert out.argmax().item() == cusco and torch.isinf(out[:filler]).all()


def test_the_gbnf_grammar_defines_every_rule_it_uses():
    import re

    from knowgen.agents.gbnf import reply_gbnf
    from knowgen.envs.trl_env import adapter_class, tool_schemas

    for tools in (tool_schemas(), tool_schemas(adapter_class("compact")), []):
        text = reply_gbnf(tools, ["IMG_001", "IMG_004"])
        rules = dict(line.split(" ::= ", 1) for line in text.strip().splitlines())
        assert len(rules) == len(text.strip().splitlines())  # no rule written twice
        for body in rules.values():
            bare = re.sub(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]|\{\d*,\d*\}', " ", body)
            for name in re.findall(r"[a-zA-Z][a-zA-Z0-9-]*", bare):
                assert name in rules, f"{name} is used but never defined"
        assert ('"\\"IMG_001\\""' in text) and "IMG_002" not in text
        assert ("call ::=" in text) == bool(tools)


def test_an_answer_can_be_required_to_cite_a_picture_or_held_back():
    answer = '<answer>{"gen_prompt": "x", "reference_images": %s}</answer>'
    citing = ReplyGrammar(tools=TOOL_SCHEMAS, answer_ids=IDS, min_references=1)
    assert not citing.accepts(answer % "[]")
    assert citing.accepts(answer % '[{"img_id": "IMG_002"}]')
    # nothing shown: the least is what can be cited
    assert ReplyGrammar(answer_ids=[], min_references=1).accepts(answer % "[]")
    held = ReplyGrammar(tools=TOOL_SCHEMAS, answer_ids=[], answer=False)
    assert not held.accepts("<think>x</think><a")
    assert held.feed(format_tool_call("image_search", {"query": "Flag of Peru"}, think="x"))
    with pytest.raises(ValueError, match="tool"):
        ReplyGrammar(tools=(), answer=False)


def test_the_gbnf_grammar_takes_the_same_turn_rules():
    from knowgen.agents.gbnf import reply_gbnf

    held = reply_gbnf(TOOL_SCHEMAS, [], answer=False)
    assert held.splitlines()[0] == "root ::= think? call" and "answer ::=" not in held
    citing = reply_gbnf(TOOL_SCHEMAS, IDS, min_references=1)
    refs = next(line for line in citing.splitlines()
                if line.startswith("answer-json-reference-images ::="))
    assert ")?" not in refs  # at least one item
    free = reply_gbnf(TOOL_SCHEMAS, IDS)
    assert ")?" in next(line for line in free.splitlines()
                        if line.startswith("answer-json-reference-images ::="))
    with pytest.raises(ValueError, match="tool"):
        reply_gbnf([], [], answer=False)
    llama_cpp = pytest.importorskip("llama_cpp")
    for text in (held, citing, free):
        assert llama_cpp.LlamaGrammar.from_string(text, verbose=False) is not None


def test_the_turn_rules_follow_the_episode(env_like):
    """Read from a real episode's messages: no answer before a picture, then cite one;
    once the environment closes the tools, only the answer (citing none if none was shown)."""
    env = env_like(max_tool_calls=2)
    env.reset(options={"task_index": 0})
    assert reply_rules(env.messages(), TOOL_SCHEMAS, False) == {
        "tools": TOOL_SCHEMAS, "answer_ids": [], "min_references": 0, "answer": True}
    assert reply_rules(env.messages(), TOOL_SCHEMAS, True)["answer"] is False
    env.step(format_tool_call("search", {"queries": ["capital Lima"]}))
    assert reply_rules(env.messages(), TOOL_SCHEMAS, True)["answer"] is False
    obs, *_ = env.step(format_tool_call("image_search", {"query": "Flag of Peru"}))
    rules = reply_rules(env.messages(), TOOL_SCHEMAS, True)
    assert answer_due(env.messages()) and tools_closed(compact_observation(obs))
    assert rules["tools"] == () and rules["answer"] and rules["min_references"] == 1
    assert rules["answer_ids"][0] == "IMG_001"
    env.reset(options={"task_index": 0})
    env.step(format_tool_call("search", {"queries": ["capital Lima"]}))
    env.step(format_tool_call("search", {"queries": ["flag of Peru"]}))
    rules = reply_rules(env.messages(), TOOL_SCHEMAS, True)
    assert rules == {"tools": (), "answer_ids": [], "min_references": 1, "answer": True}
    assert ReplyGrammar(**rules).accepts(
        '<answer>{"gen_prompt": "x", "reference_images": []}</answer>')



def test_finish_count_holds_the_answer_until_every_counted_picture_was_looked_for(env_like):
    """On a real two-flag task: after "flag 1 of 2" only a tool call may follow; after the
    second image search (numbered or not) the answer must cite two pictures; a closed
    toolbox still lets the agent answer."""
    env = env_like(max_tool_calls=3)
    task = next(t for t in env.tasks if t.id.startswith("two_flags"))
    env.reset(options={"task_id": task.id})
    names = [e.name for e in task.facts.entities]
    first = format_tool_call("image_search", {"query": f"Flag of {names[0]}"},
                             think=f"The request asks for two flags. Next, flag 1 of 2: "
                                   f"the official flag of {names[0]}.")
    env.step(first)
    assert image_searches_counted(env.messages()) == (1, 2)
    assert reply_rules(env.messages(), TOOL_SCHEMAS, True)["answer"] is True
    held = reply_rules(env.messages(), TOOL_SCHEMAS, True, finish_count=True)
    assert held["answer"] is False and held["tools"] == TOOL_SCHEMAS
    assert not ReplyGrammar(**held).feed("<answer>")
    env.step(format_tool_call("image_search", {"query": f"Flag of {names[1]}"},
                              think=f"Next, the official flag of {names[1]}."))
    assert image_searches_counted(env.messages()) == (2, 2)
    rules = reply_rules(env.messages(), TOOL_SCHEMAS, True, finish_count=True)
    assert rules["answer"] is True and rules["min_references"] == 2
    one = format_answer(Answer("flags", (ReferenceImage("IMG_001", "flag"),)))
    two = format_answer(Answer("flags", (ReferenceImage("IMG_001", "flag"),
                                         ReferenceImage(rules["answer_ids"][-1], "flag"))))
    assert not reads_under(rules, one) and reads_under(rules, two)

    env.reset(options={"task_id": task.id})
    env.step(first)
    env.step(format_tool_call("search", {"queries": [f"capital of {names[1]}"]}))
    env.step(format_tool_call("search", {"queries": [f"flag of {names[1]}"]}))
    closed = reply_rules(env.messages(), TOOL_SCHEMAS, True, finish_count=True)
    assert answer_due(env.messages())
    assert closed["answer"] is True and closed["tools"] == ()


def reads_under(rules, text):
    g = ReplyGrammar(**rules)
    return g.feed(text) and g.complete


def test_picture_counts_are_read_only_from_the_agents_own_turns():
    """A count in a request or tool result is not the agent's; an impossible one is ignored."""
    messages = [{"role": "user", "content": "Draw flag 1 of 3: Peru, then the others."},
                {"role": "assistant", "content": "<think>Next, flag 3 of 2: x.</think>"},
                {"role": "tool", "content": "step 1 of 4: nothing"}]
    assert image_searches_counted(messages) == (0, 0)
    messages.append({"role": "assistant", "content": "<think>Next, logo 1 of 3: x.</think>",
                     "tool_calls": [{"type": "function", "function": {
                         "name": "image_search", "arguments": '{"query": "x logo"}'}}]})
    messages.append({"role": "assistant", "content": format_tool_call(
        "image_search", {"query": "y logo"}, think="Next, the official logo of y.")})
    assert image_searches_counted(messages) == (2, 3)


def test_a_repeated_call_is_found_and_its_tool_closed_for_the_turn(env_like):
    """On a real episode: after a web search for "Solana logo" (with "capital Lima") and an
    image search for "Flag of Peru", a reply that gives only queries its tool was given
    before (``times`` times; twice by default) is a repeat, case and spacing aside. With
    that tool closed the turn may call another, but not with one of its own earlier
    queries either."""
    env = env_like(max_tool_calls=6)
    env.reset(options={"task_index": 0})
    env.step(format_tool_call("search", {"queries": ["Solana logo", "capital Lima"]}))
    env.step(format_tool_call("image_search", {"query": "Flag of Peru"}))
    messages = env.messages()
    assert earlier_arguments(messages) == {
        "search": {"queries": ["Solana logo", "capital Lima"]},
        "image_search": {"query": ["Flag of Peru"]}}

    def call(name, args):
        return format_tool_call(name, args, think="Look it up.")

    once = {"times": 1}
    assert repeated_tool(messages, call("search", {"queries": ["solana  LOGO"]}), **once) \
        == "search"
    assert repeated_tool(messages, call("search", {"queries": ["Capital Lima ", "Solana logo"]}),
                         **once) == "search"
    assert repeated_tool(messages, call("image_search", {"query": "flag of peru"}), **once) \
        == "image_search"
    for fresh in (call("search", {"queries": ["Solana logo", "Solana logo variants"]}),
                  call("image_search", {"query": "Solana logo"}),
                  call("search", {"queries": ["Flag of Peru"]}),
                  format_answer(Answer("x", (ReferenceImage("IMG_001", "flag"),)))):
        assert repeated_tool(messages, fresh, **once) is None, fresh
    # by default a call may be made twice; the third time is the repeat
    assert repeated_tool(messages, call("image_search", {"query": "Flag of Peru"})) is None
    env.step(call("image_search", {"query": "Flag of Peru"}))
    assert repeated_tool(env.messages(), call("image_search", {"query": "Flag of Peru"})) \
        == "image_search"

    free = reply_rules(messages, TOOL_SCHEMAS, True)
    rules = reply_rules(messages, TOOL_SCHEMAS, True, closed=("search",))
    assert "search" not in [t["function"]["name"] for t in rules["tools"]]
    assert reads_under(free, call("search", {"queries": ["Solana logo variants"]}))
    assert not reads_under(rules, call("search", {"queries": ["Solana logo variants"]}))
    assert reads_under(free, call("image_search", {"query": "FLAG of Peru"}))
    assert not reads_under(rules, call("image_search", {"query": "FLAG of Peru"}))
    assert reads_under(rules, call("image_search", {"query": "Solana logo"}))
    # a refused query is refused at its closing quote: it may still go on
    g = ReplyGrammar(**rules)
    assert g.feed('<tool_call>{"name": "image_search", "arguments": {"query": "Flag of Peru')
    assert not g.accepts('"') and g.accepts(' 1985"')
    # with every tool closed the turn is the answer
    every = [t["function"]["name"] for t in TOOL_SCHEMAS]
    assert reply_rules(messages, TOOL_SCHEMAS, True, closed=every)["tools"] == ()
    assert "not_in" not in json.dumps(TOOL_SCHEMAS)  # the schemas given are left alone


def test_a_fresh_decode_may_not_copy_its_tools_example_unread(env_like):
    """On a real episode with the compact tools the bundled agent is trained on: with the
    web search closed, the image search may not be the example of its own description
    ("Flag of Peru") while neither the request nor a result has shown it; a first decode
    may, and so may a fresh one once a result shows it."""
    from knowgen.envs.trl_env import adapter_class, tool_schemas

    tools = tool_schemas(adapter_class("compact"))
    image_search = next(t for t in tools if t["function"]["name"] == "image_search")
    assert description_examples(image_search) == {"query": ["Flag of Peru"]}
    env = env_like(max_tool_calls=6)
    task = next(t for t in env.tasks if "peru" not in t.prompt.lower())
    env.reset(options={"task_id": task.id})
    env.step(format_tool_call("search", {"queries": ["Solana logo"]}))
    messages = env.messages()
    read = [m for m in messages if m["role"] in ("user", "tool")]  # not the system prompt
    assert "flag of peru" not in json.dumps(read).lower()

    def call(query):
        return format_tool_call("image_search", {"query": query}, think="Look.")

    fresh = reply_rules(messages, tools, True, closed=("search",))
    assert not reads_under(fresh, call("Flag of Peru"))
    assert not reads_under(fresh, call(" flag of  PERU"))
    assert reads_under(fresh, call("Flag of Peru of Solana"))  # refused only as a whole
    assert reads_under(fresh, call("Solana logo"))  # another tool's earlier query
    assert reads_under(reply_rules(messages, tools, True), call("Flag of Peru"))
    env.step(format_tool_call("search", {"queries": ["Flag of Peru"]}))
    shown = env.messages()
    assert "flag of peru" in json.dumps(shown[-1]).lower()
    assert reads_under(reply_rules(shown, tools, True, closed=("search",)),
                       call("Flag of Peru"))


def test_fresh_calls_refuse_the_same_queries_in_gbnf_as_llama_cpp_reads_it():
    """The GBNF of ``fresh_calls``, run by llama.cpp's own grammar sampler over the
    bundled base model's vocabulary, token by token."""
    import ctypes
    import math

    from knowgen.agents.base_models import preset_path
    from knowgen.agents.gbnf import reply_gbnf
    from knowgen.agents.turn_rules import fresh_tools

    llama_cpp = pytest.importorskip("llama_cpp")
    try:
        model_path = preset_path("smollm2-135m")
    except ConfigError as exc:  # the base model's package is not installed
        pytest.skip(str(exc))
    llm = llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    tools = fresh_tools(TOOL_SCHEMAS, {"search": {"queries": ["Solana logo", "Sol-ana]"]},
                                       "image_search": {"query": ["Flag of Peru"]}})
    grammar = reply_gbnf(tools, [], answer=False).encode()

    def accepts(name, args):
        text = format_tool_call(name, args).replace("\n", "")
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar, b"root")
        try:
            for token in llm.tokenize(text.encode(), add_bos=False, special=False):
                data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
                candidates = llama_cpp.llama_token_data_array(data, 1, -1, False)
                llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
                if math.isinf(data[0].logit):
                    return False
                llama_cpp.llama_sampler_accept(sampler, token)
            return True
        finally:
            llama_cpp.llama_sampler_free(sampler)

    assert not accepts("search", {"queries": ["solana LOGO"]})
    assert not accepts("search", {"queries": ["Sol-ana]"]})
    assert not accepts("image_search", {"query": "Flag of Peru"})
    assert accepts("search", {"queries": ["Solana logo variants", "Sol-ana"]})
    assert accepts("search", {"queries": ["Flag of Peru"]})
    assert accepts("image_search", {"query": "Solana logo"})
    assert accepts("image_search", {"query": "Flag of Perus"})
    # case and spacing aside, with the verdict of the transformers grammar on each
    rules = {"tools": tools, "answer_ids": (), "answer": False}
    for query, refused in (("Flag  of Peru", True), (" flag of PERU ", True),
                           ("Flag\u00a0of\u2003Peru", True), ("  Flag of  Peru  ", True),
                           ("Flag of Peru x", False), ("Flag ofPeru", False),
                           ("Flag of Pe ru", False), ("  Flag of", False), ("  ", True),  # blank: minLength
                           ("Sol ana logo", False)):
        text = format_tool_call("image_search", {"query": query}).replace("\n", "")
        assert accepts("image_search", {"query": query}) is not refused, query
        assert reads_under(rules, text) is not refused, query
    assert not accepts("search", {"queries": ["Solana   logo"]})
    assert accepts("search", {"queries": ["Solana logo 2"]})
