"""Model artifacts: skops persistence, and the ONE function allowed to load a model.

Never pickle/joblib: loading a pickle runs arbitrary code. skops stores a model as data and only
rebuilds the types it is told to trust. `load_model` refuses, with a clear error, before anything is
deserialised:
- an artifact whose SHA-256 differs from the one recorded in the registry (tampered or swapped file);
- an artifact outside the model store (path traversal through a registry row);
- an artifact that contains a type not in `TRUSTED_TYPES`, the list pinned here in code (a new model
  family adds its types here, in review, never at load time).
The registry (lib/registry.py) signs the recorded SHA-256, so the recorded hash itself can be trusted.

`canonical_model_hash` identifies a fitted model by content: two fits that learned the same parameters
get the same canonical hash even though their skops files differ byte for byte (see its docstring).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
import zipfile
from pathlib import Path
from typing import Any

# Every type a model artifact may contain, pinned in code. Found by walking the schema of each family's
# fitted pipeline (scikit-learn 1.9 / numpy 2); a library upgrade or a new family that needs another type
# fails loudly in the tests and the type is added here, in review, never at load time. This is stricter
# than skops' own defaults, which trust any scikit-learn estimator.
TRUSTED_TYPES: tuple[str, ...] = (
    "builtins.dict",
    "builtins.list",
    "builtins.str",
    "builtins.tuple",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "numpy.random._generator.Generator",
    "numpy.uint64",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
)


class ModelArtifactError(RuntimeError):
    """Base class: a model artifact was refused."""


class ArtifactIntegrityError(ModelArtifactError):
    """The artifact's SHA-256 does not match the registry, or the file is missing/outside the store."""


class UntrustedTypeError(ModelArtifactError):
    """The artifact contains types outside the pinned trust list."""


def _skops():
    """skops.io, imported on first use: it imports scikit-learn, seconds of start-up that runs which never
    touch a model should not pay (see 'Start-up cost' in docs/architecture.md)."""
    model_libraries_ready()
    import skops.io

    return skops.io


_warm_up: threading.Thread | None = None
_warm_up_started = threading.Lock()


def _import_model_libraries() -> None:
    import skops.io  # noqa: F401 - imports every scikit-learn estimator module (skops lists them)


def warm_up_model_libraries() -> None:
    """Start importing skops and scikit-learn in a background thread, once per process.

    A run worker that will load or fit a model (its run needs the model store) pays that import, ~3 s, in
    the first model step: in a landed day's run, after the raw, cleaned and feature steps, which mostly
    wait on DuckDB. Started when the run begins, the import overlaps them."""
    global _warm_up
    with _warm_up_started:
        if _warm_up is None:
            _warm_up = threading.Thread(target=_import_model_libraries, name="model-libraries", daemon=True)
            _warm_up.start()


def model_libraries_ready() -> None:
    """Wait for the warm-up, if one was started, before importing scikit-learn or skops: two threads that
    import one package graph at the same time can deadlock (Python then raises in one of them)."""
    if _warm_up is not None:
        _warm_up.join()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def artifact_types(data: bytes) -> set[str]:
    """Every `module.Class` named in a skops artifact's schema (read as JSON, nothing is constructed)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            schema = json.loads(z.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ArtifactIntegrityError(f"not a skops artifact: {exc}") from exc
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__module__" in node and "__class__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def untrusted_types(data: bytes) -> list[str]:
    """Types in the artifact that are not pinned in TRUSTED_TYPES (by our walk or by skops' audit)."""
    ours = artifact_types(data) - set(TRUSTED_TYPES)
    theirs = set(_skops().get_untrusted_types(data=data)) - set(TRUSTED_TYPES)
    return sorted(ours | theirs)


def canonical_model_hash(data: bytes) -> str:
    """SHA-256 of what a skops artifact says about the model, not of how the file was written.

    Two dumps of identically fitted models differ byte for byte: skops names each array file after the
    Python `id()` of the array (a memory address), records those ids as `__id__` in schema.json, and the
    zip stores write times. Here every array file name is replaced by the SHA-256 of its content and
    every `__id__` by its order of first appearance (a walk in sorted-key order), so only the fitted
    parameters and the structure remain."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            schema = json.loads(z.read("schema.json"))
            contents = {n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist() if n != "schema.json"}
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ArtifactIntegrityError(f"not a skops artifact: {exc}") from exc
    ids: dict[Any, int] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: ids.setdefault(node[k], len(ids)) if k == "__id__" else walk(node[k]) for k in sorted(node)
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str) and node in contents:
            return f"sha256:{contents[node]}"
        return node

    return hashlib.sha256(json.dumps(walk(schema), sort_keys=True).encode()).hexdigest()


def model_bytes(model: Any) -> bytes:
    """The skops artifact of `model`, in memory (as save_model writes it)."""
    return _skops().dumps(model, compression=8)


def save_model(model: Any, store_root: Path, name: str) -> tuple[str, str]:
    """Persist `model` as `<store_root>/<name>.skops`; return (path relative to the store, SHA-256).

    Written to a temp name then renamed, so a reader never sees half a file. Refuses to write a model
    that the loader would later refuse (an untrusted type), so the failure shows at training time."""
    store_root = Path(store_root)
    store_root.mkdir(parents=True, exist_ok=True)
    rel = f"{name}.skops"
    target = store_root / rel
    tmp = store_root / f".{rel}.tmp"
    _skops().dump(model, tmp, compression=8)  # zipfile.ZIP_DEFLATED
    untrusted = untrusted_types(tmp.read_bytes())
    if untrusted:
        tmp.unlink()
        raise UntrustedTypeError(
            f"refusing to save model {name!r}: it contains types not in the pinned trust list "
            f"(fraud_assets/lib/model_io.py TRUSTED_TYPES): {untrusted}"
        )
    tmp.replace(target)
    return rel, sha256_file(target)


def read_artifact(store_root: Path, artifact_path: str) -> bytes:
    """The bytes of an artifact of the model store (never a path outside it)."""
    root = Path(store_root).resolve()
    path = (root / artifact_path).resolve()
    if not path.is_relative_to(root):
        raise ArtifactIntegrityError(f"artifact path {artifact_path!r} points outside the model store {root}")
    if not path.is_file():
        raise ArtifactIntegrityError(f"model artifact {path} is missing")
    return path.read_bytes()


def load_model_bytes(data: bytes, artifact_path: str, expected_sha256: str) -> Any:
    """The model in artifact bytes `data` after checking their SHA-256 and their types. The model is built
    from the bytes that were checked, so the file cannot change between check and load."""
    actual = hashlib.sha256(data).hexdigest()
    if not expected_sha256 or not hmac.compare_digest(actual, expected_sha256):
        raise ArtifactIntegrityError(
            f"refusing to load {artifact_path}: SHA-256 {actual} does not match the registry's "
            f"{expected_sha256} (the file was modified or replaced after training)"
        )
    untrusted = untrusted_types(data)
    if untrusted:
        raise UntrustedTypeError(
            f"refusing to load {artifact_path}: it contains types not in the pinned trust list "
            f"(fraud_assets/lib/model_io.py TRUSTED_TYPES): {untrusted}"
        )
    return _skops().loads(data, trusted=list(TRUSTED_TYPES))


def load_model(store_root: Path, artifact_path: str, expected_sha256: str) -> Any:
    """Load an artifact after checking its SHA-256 and its types. The only model loader in the platform."""
    return load_model_bytes(read_artifact(store_root, artifact_path), artifact_path, expected_sha256)
