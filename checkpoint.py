"""
checkpoint.py: this project's own checkpoint directory: what goes into one, how it replaces the last one so that a
kill at any moment leaves the old or the new checkpoint whole, how a save killed mid-swap is put back, and which
directories a save may replace at all.

  save(out_dir, model, tokenizer, run_config=, train_state=, weights=, extra=)   sft.py, rl.py, convert.py
  load(path, device=, dtype=, state_keys=, **overrides) -> (model, tokenizer, run_config, train_state)   a resume
  read_model(path, overrides, device, dtype) -> (model, tokenizer)   what convert.load_model runs for a checkpoint
  recover(path) -> path | None       a save killed mid-swap put back in place; path when a checkpoint is there
  replace_dir(out_dir, write, keep)  the crash-safe swap (convert.export_hf's too)
  check_out_dir(path, ...)           what a save may replace, checked at start and before every save
  claim_dir(path)                    eval.py's output folder, marked as this project's
"""

import dataclasses
import json
import os
import shutil
import signal
import stat
import tempfile
import uuid

import torch

from common import BIG, resolve_device, resolve_dtype, rng_state, set_rng_state, source_path
from model import GPTConfig
from tokenizer import Tokenizer

COMPLETE = ".complete"  # written last into a new checkpoint directory, after everything else is on disk
OWN_MARK = ".swarr"  # written into the output folder eval.py creates, so that a later eval may write there again
RUN_LOGS = ("metrics.jsonl", "samples.jsonl")  # what a run writes into out_dir before its first checkpoint
# the longest sibling a save makes beside out_dir, .NAME.tmp-XXXXXXXX, and the longest file it writes inside
SIBLING_EXTRA, INSIDE_EXTRA = len("..tmp-12345678"), len("/tokenizer_config.json.tmp")
CHECKPOINT_FILES = ("model.safetensors", "config.json", "run_config.json", "train_state.pt", "tokenizer.json",
                    "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "sharded", COMPLETE)
# a checkpoint's config.json holds every GPTConfig field but these runtime choices (a missing block_size would
# silently become 1024)
OPTIONAL_IN_CHECKPOINT = ("attn_backend",)
# train_state.pt's counters and their ranges (the step is bounded like --steps, common.BIG)
STATE_COUNTERS = {"step": (0, BIG), "epoch": (0, BIG), "cursor": (0, BIG), "global_batch": (1, BIG)}


# ----------------------------------------------------------------------------------------------------------------
# What a checkpoint holds: save and load


def save(out_dir, model, tokenizer, run_config=None, train_state=None, weights=None, extra=None):
    """Write a self-contained checkpoint directory; a crash at any moment leaves the old one or the new one, whole.

    out_dir/model.safetensors   our tensor names (a tied head is stored once, as embed.weight): weights, default
                                model.state_dict(); {} writes none (an FSDP run's checkpoint before its end, whose
                                weights are in sharded/, see parallel.save)
    out_dir/sharded/            what extra(new directory) writes, when given: an FSDP run's DCP shards
    out_dir/config.json         {"format": "swarr", "model": GPTConfig fields}
    out_dir/tokenizer*.json     the tokenizer (tokenizer.save)
    out_dir/run_config.json     the run's flags, when given
    out_dir/train_state.pt      optimizer state, step, RNG states, data cursor... when given (plain tensors, numbers,
                                strings, lists and dicts, so torch.load(weights_only=True) reads it without pickle)
    out_dir/.complete           written last, once everything else is on the disk

    The files go into a new sibling directory that then replaces out_dir (replace_dir: how, and why a kill at any
    moment is safe). Other files in out_dir (metrics.jsonl, samples.jsonl...) are carried over.
    """
    def write(tmp):
        state = {k: v.detach().to("cpu").contiguous() for k, v in (model.state_dict() if weights is None
                                                                    else weights).items()}
        if state:
            save_safetensors(state, os.path.join(tmp, "model.safetensors"))
        if extra is not None:
            extra(tmp)
        write_json(os.path.join(tmp, "config.json"), {"format": "swarr", "model": model.config.to_dict()})
        tokenizer.save(tmp)
        if run_config is not None:
            write_json(os.path.join(tmp, "run_config.json"), run_config)
        if train_state is not None:
            torch.save(train_state, os.path.join(tmp, "train_state.pt"))

    return replace_dir(out_dir, write, CHECKPOINT_FILES)


def load(path, device="auto", dtype="auto", state_keys=None, **overrides):
    """-> (model, tokenizer, run_config or None, train_state or None) from a directory written by save.

    state_keys: the train_state.pt keys a resume needs; when given, a missing file or key is a ValueError, not a run
    that silently restarts its optimizer or RNG. overrides: window=, sinks=, layer_pattern=, attn_backend= as in
    convert.load_model."""
    path = os.path.expanduser(os.fspath(path))
    recover(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"checkpoint directory {path!r} does not exist")
    device = resolve_device(device)
    model, tokenizer = read_model(path, overrides, device, resolve_dtype(dtype, device))
    run_config = train_state = None
    if os.path.isfile(os.path.join(path, "run_config.json")):
        run_config = read_json(os.path.join(path, "run_config.json"), "checkpoint")
    state_path = os.path.join(path, "train_state.pt")
    if os.path.isfile(state_path):
        try:
            train_state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated zip, a foreign pickle...: torch's message, in one line
            raise ValueError(f"{state_path} cannot be read ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:120] if str(e) else ''}); is it damaged?") from None
        if not isinstance(train_state, dict):
            raise ValueError(f"{state_path} holds a {type(train_state).__name__}, not a training state dict")
    if state_keys is not None:
        missing = [k for k in state_keys if k not in (train_state or {})]
        if missing:
            what = "no train_state.pt" if train_state is None else f"a train_state.pt without {', '.join(missing)}"
            raise ValueError(f"{path} has {what}: a partial or foreign training state, so the run cannot continue "
                             f"exactly (optimizer, RNG or data position would restart)")
        check_train_state(train_state, state_path)
    return model, tokenizer, run_config, train_state


def check_train_state(state, where):
    """The parts of a train_state.pt that a resume uses, checked before the run starts (a hand-edited or foreign
    file would otherwise fail mid-loop): counters are integers in range, the optimizer state has torch's two
    sections (common.load_optimizer_state checks its shapes against the model), and the RNG state loads."""
    for key, (low, high) in STATE_COUNTERS.items():
        value = state.get(key, low)
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"{where}: {key} is {repr(value)[:40]}, not an integer in [{low}, {high}]: a damaged "
                             f"or hand-edited training state")
    optimizer = state.get("optimizer", {"state": {}, "param_groups": []})
    if optimizer == "sharded":  # an FSDP run's: the shards are in the checkpoint's sharded/ (parallel.load_optimizer)
        optimizer = {"state": {}, "param_groups": []}
    if not (isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
            and isinstance(optimizer.get("param_groups"), list)):
        raise ValueError(f"{where}: the optimizer entry is not an optimizer state (state and param_groups)")
    if "rng" in state:
        current = rng_state()
        try:
            set_rng_state(state["rng"])
        except Exception as e:  # wrong types, lengths or shapes: torch, numpy and random each fail their own way
            raise ValueError(f"{where}: the RNG state does not load ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:100] if str(e) else ''})") from None
        finally:
            set_rng_state(current)


def read_model(path, overrides, device, dtype):
    """(model, tokenizer) of a directory written by save; overrides as in convert.load_model (KEEP: not given).
    convert.load_model comes here for a checkpoint directory; the model is built by convert's strict builder."""
    from convert import build_model, check_config, check_vocab, make_config, read_safetensors  # convert imports us
    saved = read_json(os.path.join(path, "config.json"), "checkpoint")
    if saved.get("format") != "swarr":
        raise ValueError(f"{path}/config.json is not a swarr checkpoint (no \"format\": \"swarr\"); "
                         f"for a transformers directory use load_model('hf:{path}')")
    fields = saved.get("model")
    if not isinstance(fields, dict):
        raise ValueError(f"{path}/config.json has no \"model\" object (the model's settings): a damaged checkpoint")
    missing = [f.name for f in dataclasses.fields(GPTConfig)
               if f.name not in fields and f.name not in OPTIONAL_IN_CHECKPOINT]
    if missing:  # save writes every field; a default would silently build another model
        raise ValueError(f"{path}/config.json: the model's settings lack {', '.join(missing)}: a damaged or "
                         f"hand-edited checkpoint")
    check_config(fields, f"{path}/config.json")
    config = make_config(GPTConfig.from_dict(fields).to_dict(), overrides, f"{path}/config.json")
    tokenizer = Tokenizer.load(path)
    check_vocab(config, tokenizer, path)
    if not os.path.isfile(os.path.join(path, "model.safetensors")) and os.path.isdir(os.path.join(path, "sharded")):
        names, get = _dcp_weights(os.path.join(path, "sharded"))
        return build_model(config, names, get, None, path, device=device, dtype=dtype), tokenizer
    with read_safetensors(path) as (names, get):
        return build_model(config, names, get, None, path, device=device, dtype=dtype), tokenizer


def _dcp_weights(path):
    """The weights of an FSDP run's checkpoint before its end (parallel.save): torch.distributed.checkpoint's shards,
    assembled into whole tensors by this process alone -> (names, get) as convert.read_safetensors gives them."""
    import torch.distributed.checkpoint as dcp
    stored = dcp.FileSystemReader(path).read_metadata().state_dict_metadata
    weights = {k.removeprefix("model."): torch.empty(m.size, dtype=m.properties.dtype)
               for k, m in stored.items() if k.startswith("model.")}
    dcp.load({"model": weights}, checkpoint_id=path, no_dist=True)
    return list(weights), weights.__getitem__


# ----------------------------------------------------------------------------------------------------------------
# Files (convert.py's import and export use them too)


def save_safetensors(tensors, path):
    from safetensors.torch import save_file
    save_file(tensors, path, metadata={"format": "pt"})
    umask = os.umask(0o022)  # reading the umask means setting it: set it straight back
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # safetensors creates the file readable by its owner only


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, default=str)
        f.write("\n")


def read_json(path, what):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {os.path.basename(path)} in {os.path.dirname(path)}: not a {what} directory")
    try:
        with open(path) as f:
            obj = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a JSON {type(obj).__name__}, not an object: not a {what} config")
    return obj


# ----------------------------------------------------------------------------------------------------------------
# The crash-safe swap of a directory, and its recovery


def replace_dir(out_dir, write, keep):
    """Replace the directory out_dir by what write(tmp) puts into a new one; a crash at any moment leaves the old
    directory or the new one, whole. Returns out_dir as given (absolute).

    (1) write(tmp) into a new sibling .NAME.tmp-ID, fsync it, COMPLETE last; (2) rename out_dir aside to
    .NAME.old-ID; (3) rename the new copy into place; (4) remove the old one. Between (2) and (3) there is no
    out_dir: recover, which every loader and resume check calls, then renames the newest complete copy back into
    place. The next save removes what crashed saves left beside out_dir. Entries of out_dir not named in keep
    (metrics.jsonl, samples.jsonl...) are hard-linked into the new copy, so they survive the swap and stay the one
    file the training loop appends to. A symlinked out_dir stays a link (the new copy goes where it points); an
    existing out_dir keeps its permissions. Only a new or empty directory, or one this project wrote, is ever
    replaced (check_out_dir, which the scripts also call at start): never the working directory, a model the user
    downloaded or a folder of their files.

    Test hook: SWARR_KILL_AT=PHASE[:N] kills the process (SIGKILL) at PHASE of its N-th save (default the first):
    written (files written, not yet complete), complete (before (2)), aside (between (2) and (3)), swapped
    (before (4)).
    """
    global _saves
    _saves += 1
    keep = {*keep, COMPLETE}  # the old copy's marker must never pass for the new one's
    given = os.path.abspath(os.fspath(out_dir))
    out_dir = os.path.realpath(given)
    parent, name = os.path.split(out_dir)
    recover(out_dir)  # a crashed save's copy back in place first: its metrics.jsonl is carried over below
    check_out_dir(out_dir, "save directory", probe=False)  # the last guard: only an empty directory or ours
    os.makedirs(parent, exist_ok=True)
    _remove_copies(parent, name)
    tmp = os.path.join(parent, f".{name}.tmp-{uuid.uuid4().hex[:8]}")
    os.mkdir(tmp)  # the umask's permissions, or out_dir's own:
    if os.path.isdir(out_dir):
        os.chmod(tmp, stat.S_IMODE(os.stat(out_dir).st_mode))
    aside = None
    try:
        write(tmp)
        for entry in os.listdir(tmp):
            _fsync(os.path.join(tmp, entry))
        _kill_point("written")
        if os.path.isdir(out_dir):
            for entry in os.listdir(out_dir):
                if entry not in keep and not os.path.exists(os.path.join(tmp, entry)):
                    _link_or_copy(os.path.join(out_dir, entry), os.path.join(tmp, entry))
        with open(os.path.join(tmp, COMPLETE), "w"):
            pass
        _fsync(os.path.join(tmp, COMPLETE))
        _fsync(tmp)
        _kill_point("complete")
        if os.path.isdir(out_dir):
            aside = os.path.join(parent, f".{name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(out_dir, aside)
            _kill_point("aside")
        try:
            os.rename(tmp, out_dir)
        except FileNotFoundError:  # a reader's recover came first and put this very copy in place
            if os.path.exists(tmp) or not os.path.isdir(out_dir):
                raise
        _fsync(parent)
        _kill_point("swapped")
    except BaseException:
        if aside is not None and not os.path.exists(out_dir):  # failed between the two renames
            os.rename(aside, out_dir)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_copies(parent, name)
    return given


def recover(path):
    """Put a checkpoint back at path if a save was killed between its two renames, then -> path when it holds a
    checkpoint (a config.json), else None.

    Such a kill (see replace_dir) leaves no directory at path, but complete copies beside it: the newest new one
    (.NAME.tmp-ID with .complete), else the old one (.NAME.old-ID, a former checkpoint) is renamed into place. Call
    it before deciding that a run has no checkpoint."""
    path = os.path.expanduser(os.fspath(path))
    real = os.path.realpath(path)
    parent, name = os.path.split(real)
    if not os.path.exists(real) and os.path.isdir(parent):
        entries = os.listdir(parent)
        for kind, marker in (("tmp", COMPLETE), ("old", "config.json")):
            copies = [os.path.join(parent, e) for e in entries if e.startswith(f".{name}.{kind}-")
                      and os.path.isfile(os.path.join(parent, e, marker))]
            if copies:
                newest = max(copies, key=lambda c: os.stat(os.path.join(c, marker)).st_mtime_ns)
                try:
                    os.rename(newest, real)
                    _fsync(parent)
                except OSError:
                    if not os.path.isdir(real):  # else another process (a DDP rank) came first
                        raise
                break
    return path if os.path.isfile(os.path.join(real, "config.json")) else None


def remove_leftovers(out_dir):
    """At the start of a run that writes out_dir (its main process only): a crashed save's checkpoint put back
    (recover), then the copies crashed saves left beside out_dir removed. Without this, a run killed after its last
    save's swap and resumed with no step left (so it never saves) would keep a whole stale copy beside out_dir."""
    recover(out_dir)
    parent, name = os.path.split(os.path.realpath(os.path.abspath(os.fspath(out_dir))))
    if name and os.path.isdir(parent):
        _remove_copies(parent, name)


def _remove_copies(parent, name):
    """Remove the copies of out_dir that crashed saves left beside it. Each is first renamed to .NAME.del-ID, so that
    a crash during the removal cannot leave a partial copy that recover would take for a whole one."""
    for entry in os.listdir(parent):
        if entry.startswith((f".{name}.tmp-", f".{name}.old-", f".{name}.del-")):
            doomed = os.path.join(parent, entry)
            if not entry.startswith(f".{name}.del-"):
                doomed = os.path.join(parent, f".{name}.del-{uuid.uuid4().hex[:8]}")
                os.rename(os.path.join(parent, entry), doomed)
            shutil.rmtree(doomed, ignore_errors=True)


_saves = 0  # replace_dir calls (checkpoint saves) in this process, for SWARR_KILL_AT


def _kill_point(phase):
    want, _, nth = os.environ.get("SWARR_KILL_AT", "").partition(":")
    if want == phase and _saves == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync(path):
    """Flush a file or a directory's entries to the disk: a rename is only as durable as what it points to."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        if not os.path.isdir(path):  # some filesystems cannot sync a directory: then the files' sync must do
            raise
    finally:
        os.close(fd)


def _link_or_copy(src, dst):
    if os.path.isdir(src):
        shutil.copytree(src, dst, copy_function=_link_or_copy, symlinks=True)
        return dst
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


# ----------------------------------------------------------------------------------------------------------------
# Which directories a save may replace


def is_own_dir(path):
    """Whether a save may replace (or eval.py write into) the existing directory path: it is empty, or this project
    wrote it: a checkpoint or an export (COMPLETE, or a config.json with "format": "swarr" from before COMPLETE
    existed), eval.py's output (OWN_MARK), or only the logs of a run that has not saved yet."""
    entries = set(os.listdir(path))
    if not entries or COMPLETE in entries or OWN_MARK in entries:
        return True
    if entries <= {*RUN_LOGS, *(f"{log}.tmp" for log in RUN_LOGS)}:
        return True
    config = os.path.join(path, "config.json")
    try:
        if os.path.getsize(config) > 2**20:  # ours are a few KiB; never parse a large foreign file
            return False
        with open(config, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and saved.get("format") == "swarr"


def check_out_dir(path, flag="--out_dir", inputs=(), probe=True):
    """Refuse, with one line (ValueError), a directory that a save must not replace or cannot make: the root, the
    working directory or a folder above it (the swap would pull the cwd from under the process), one of the run's
    inputs (model specs such as hf:DIR or a checkpoint dir: the save would destroy what the run reads), a file or a
    path under one, a name too long for the file system (with the sibling a save makes beside it), a place this
    process cannot write (probe: tried by making and removing an entry), and an existing directory that is neither
    empty nor this project's (is_own_dir). Scripts call it at start, before any training; replace_dir calls it
    again before every save, as the last guard (without the probe: the save itself then fails on a write, and a
    kill there must not leave a stray entry). Returns the resolved path."""
    given = os.fspath(path)
    what = f"{flag}={given}" if flag.startswith("--") else f"{flag} {given!r}"
    if not given:
        raise ValueError(f"{what}: the path is empty")
    real = os.path.realpath(os.path.abspath(os.path.expanduser(given)))
    parent, name = os.path.split(real)
    if not name:
        raise ValueError(f"{what} is the root directory; a save replaces the whole directory: use a new one")
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:  # the working directory was removed: nothing there to protect
        cwd = None
    if cwd is not None and (real == cwd or cwd.startswith(real + os.sep)):
        raise ValueError(f"{what} is the working directory or holds it; a save replaces the whole directory: use a "
                         f"new one, e.g. out/run")
    if os.path.exists(real):
        for spec in inputs:
            source = source_path(spec) if spec else None
            if source is not None and os.path.samefile(source, real):
                raise ValueError(f"{what} is {spec}, which this run reads: the save would replace it; write to "
                                 f"another directory")
    existing = real
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "is a file" if existing == real else f"is under the file {existing}"
        raise ValueError(f"{what} {where}, not a directory")
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
        path_max = os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    new_parts = os.path.relpath(real, existing).split(os.sep) if real != existing else []
    if (any(len(os.fsencode(part)) > name_max for part in new_parts)
            or len(os.fsencode(name)) + SIBLING_EXTRA > name_max
            or len(os.fsencode(real)) + max(SIBLING_EXTRA, INSIDE_EXTRA) > path_max):
        raise ValueError(f"{what}: the path is too long for the file system (names of at most "
                         f"{name_max - SIBLING_EXTRA} bytes, paths of at most {path_max - INSIDE_EXTRA})")
    if probe:  # a save writes into out_dir and renames it in its parent
        for folder in [real, parent] if existing == real else [existing]:
            if not _writable(folder):
                raise ValueError(f"{what}: cannot write in {folder} (permissions or a read-only file system)")
    if existing == real:
        try:
            own = is_own_dir(real)
        except OSError as e:
            raise ValueError(f"{what}: cannot read the directory ({e.strerror or e})") from None
        if not own:
            found = sorted(os.listdir(real))
            raise ValueError(f"{what} holds files that are not a swarr checkpoint ({', '.join(found[:3])}"
                             f"{', ...' if len(found) > 3 else ''}); a save replaces the whole directory: use a new "
                             f"or empty one")
    return real


def _writable(folder):
    """Whether this process can create entries in folder, tried for real: os.access says yes to root on a
    read-only file system's directories with write bits, and no to ACL grants it cannot see."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".swarr-probe-", dir=folder))
        return True
    except OSError:
        return False


def claim_dir(path):
    """Make the output folder path that eval.py writes its files into, and mark it as this project's (OWN_MARK),
    so that a later run may write into it again. check_out_dir(path) first."""
    os.makedirs(path, exist_ok=True)
    open(os.path.join(path, OWN_MARK), "a").close()
    return path
