"""The browser's age library: node_modules' ES modules, served to the owner's pages.

The pages decrypt clips with ``age-encryption`` (the age authors' TypeScript
library) and the ``@noble``/``@scure`` packages it depends on, installed from
the npm registry by ``package-lock.json`` (``scripts/setup``), never from a
CDN. This module finds that ``node_modules``, lists once at start the only
files it may serve (every ``.js`` file of age-encryption and of the packages
it needs, walked from their ``package.json`` files as Node resolves them),
writes the page's import map for them, and serves them:

    vendor = Vendor.load(find_node_modules())   # or installed(): found, cached
    vendor.import_map                           # <script type="importmap"> text
    vendor.csp_hash                             # "'sha256-…'" for script-src
    add_vendor_routes(app, vendor)              # GET /vendor/{tag}/{package path}

Every URL the import map names carries a tag, a digest of the served files'
contents, so the files can be cached as immutable and a new install (another
digest) is never mixed with an old one in a browser's cache. Anything not
listed is 404; without node_modules every /vendor/ request is 503
(:data:`NOT_INSTALLED`). Pure apart from reading node_modules at load and
serving its files.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from aiohttp import web

import doorbell
from doorbell.errors import DoorbellError

IMPORT_PREFIX = "/vendor/"
ENTRY = "age-encryption"  # the package the pages import; everything served follows from it
ENVIRONMENT = "DOORBELL_NODE_MODULES"
PI_INSTALL = Path("/opt/doorbell/node_modules")
NOT_INSTALLED = "the browser part is not installed: run scripts/setup"
CACHE_CONTROL = "public, max-age=31536000, immutable"  # a tagged URL never changes
CONDITIONS = ("browser", "import", "module", "default")  # export conditions, in preference
_TAG_LENGTH = 12  # hex digits of the content digest in every URL


class VendorError(DoorbellError, OSError):
    """node_modules cannot be served as it is: a package missing, leading outside
    node_modules, or exporting what the import map cannot say. The message names it."""


@dataclass(frozen=True)
class Package:
    """One installed copy of a package: ``where`` is its folder relative to
    node_modules (``@noble/post-quantum/node_modules/@noble/hashes`` for a nested
    copy), ``manifest`` its parsed package.json."""

    name: str
    where: str
    manifest: Mapping[str, Any]


class Vendor:
    """What may be served from one node_modules, and the import map naming it.

    ``files`` holds the servable paths relative to node_modules (POSIX, no ``..``,
    each a regular ``.js`` file inside node_modules once symlinks are resolved);
    ``tag`` the digest in every URL; ``import_map`` the exact JSON text for the
    page's ``<script type="importmap">`` (no ``<``, ``>`` or ``&`` in it, so it is
    safe inside the element as it is); ``csp_hash`` its ``'sha256-…'`` source.
    """

    def __init__(self, node_modules: Path, files: frozenset[str], map_text: str, tag: str):
        self.node_modules = node_modules
        self.files = files
        self.tag = tag
        self.import_map = map_text
        self.csp_hash = csp_hash(map_text)

    @classmethod
    def load(cls, node_modules: Path) -> Vendor:
        """Walk ``node_modules`` from age-encryption; raises VendorError naming the problem."""
        root = node_modules.resolve()
        packages = _needed(root)
        files = frozenset(f for package in packages for f in _scripts(root, package.where))
        tag = _digest(root, files)
        prefix = f"{IMPORT_PREFIX}{tag}/"
        map_text = _import_map(root, packages, files, prefix)
        return cls(root, files, map_text, tag)

    def path(self, url_path: str) -> Path | None:
        """The file for ``url_path`` (what follows /vendor/: tag, then the package path),
        or None unless it is listed and its tag is this install's."""
        tag, _, rest = url_path.partition("/")
        if tag != self.tag or rest not in self.files:
            return None
        return self.node_modules / rest


class VendorState(NamedTuple):
    """Whether the pages can decrypt: ``installed``, else ``message`` says why not
    (:data:`NOT_INSTALLED`, or what is wrong with node_modules)."""

    installed: bool
    message: str
    node_modules: Path | None


def find_node_modules(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$DOORBELL_NODE_MODULES`` if set, else ``node_modules`` beside the checkout
    doorbell runs from, else the Pi install's; None if none holds age-encryption."""
    environ = os.environ if environ is None else environ
    if environ.get(ENVIRONMENT):
        candidates = [Path(environ[ENVIRONMENT])]
    else:
        checkout = Path(doorbell.__file__).resolve().parents[1] / "node_modules"
        candidates = [checkout, PI_INSTALL]
    for candidate in candidates:
        if (candidate / ENTRY / "package.json").is_file():
            return candidate
    return None


@functools.cache
def installed() -> Vendor | None:
    """The Vendor of :func:`find_node_modules`, loaded once; None if there is none
    or it cannot be served (:func:`vendor_state` says which)."""
    return _installed()[0]


@functools.cache
def _installed() -> tuple[Vendor | None, str]:
    found = find_node_modules()
    if found is None:
        return None, NOT_INSTALLED
    try:
        return Vendor.load(found), ""
    except VendorError as err:
        return None, f"the browser part cannot be served: {err}; run scripts/setup"


def vendor_state() -> VendorState:
    """Whether the browser part is installed, for the pages to say so when it is not."""
    vendor, problem = _installed()
    if vendor is None:
        return VendorState(False, problem, None)
    return VendorState(True, "", vendor.node_modules)


EMPTY_MAP = json.dumps({"imports": {}}, separators=(",", ":"))


def import_map() -> str:
    """The installed import map's text (an empty map when not installed)."""
    vendor = installed()
    return vendor.import_map if vendor else EMPTY_MAP


def import_map_csp_hash() -> str:
    """``'sha256-<base64>'`` of :func:`import_map`'s exact text, for script-src."""
    return csp_hash(import_map())


def csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


# -- serving ---------------------------------------------------------------------------

VENDOR: web.AppKey[Vendor | None] = web.AppKey("vendor")  # None: not installed


async def serve(request: web.Request) -> web.StreamResponse:
    """GET /vendor/{path}: a listed file as text/javascript (cacheable: its URL has the
    tag); 404 for anything else; 503 :data:`NOT_INSTALLED` without node_modules.
    The app's Vendor is ``app[VENDOR]`` if set, else :func:`installed`."""
    if VENDOR in request.app:
        vendor, problem = request.app[VENDOR], NOT_INSTALLED
    else:
        vendor, problem = _installed()
    if vendor is None:
        raise web.HTTPServiceUnavailable(text=problem + "\n")
    path = vendor.path(request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound(text="no such library file\n")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "text/javascript; charset=utf-8",
            "Cache-Control": CACHE_CONTROL,
        },
    )


ROUTE = IMPORT_PREFIX + "{path:.+}"  # the route's path, for a routes table (public: the
# unlock page decrypts its challenge with these files)


def add_vendor_routes(app: web.Application, vendor: Vendor | None) -> None:
    """Serve ``vendor`` (None: not installed, every request 503) under /vendor/."""
    app[VENDOR] = vendor
    app.router.add_get(ROUTE, serve)


# -- walking node_modules --------------------------------------------------------------


def _needed(root: Path) -> list[Package]:
    """age-encryption and every package copy it needs, as Node would resolve them."""
    first = _package(root, ENTRY)
    seen = {first.where: first}
    queue = [first]
    while queue:
        package = queue.pop()
        for name in _dependencies(package):
            dependency = _resolve(root, package, name)
            if dependency is None:
                raise VendorError(f"{package.name} needs {name}, which is not installed")
            if dependency.where not in seen:
                seen[dependency.where] = dependency
                queue.append(dependency)
    return sorted(seen.values(), key=lambda p: p.where)


def _dependencies(package: Package) -> list[str]:
    names = dict(package.manifest.get("dependencies") or {})
    return sorted(names)


def _resolve(root: Path, package: Package, name: str) -> Package | None:
    """The copy of ``name`` that ``package`` imports: its own node_modules first, then
    each enclosing one up to the top (Node's lookup)."""
    chain = package.where.split("/node_modules/")
    for depth in range(len(chain), -1, -1):
        where = "/node_modules/".join([*chain[:depth], name])
        if (root / where / "package.json").is_file():
            return _package(root, where)
    return None


def _package(root: Path, where: str) -> Package:
    folder = _inside(root, root / where, where)
    try:
        manifest = json.loads((folder / "package.json").read_text("utf-8"))
    except (OSError, ValueError) as err:
        raise VendorError(f"cannot read {where}/package.json: {err}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("name"), str):
        raise VendorError(f"{where}/package.json has no name")
    return Package(manifest["name"], where, manifest)


def _inside(root: Path, path: Path, shown: str) -> Path:
    """``path`` with symlinks resolved; VendorError if that leaves node_modules."""
    real = path.resolve()
    if not real.is_relative_to(root):
        raise VendorError(f"node_modules/{shown} leads outside node_modules")
    return real


def _scripts(root: Path, where: str) -> Iterator[str]:
    """The package's ``.js`` files (not those of packages nested in it), relative to root."""
    top = root / where
    for folder, subfolders, names in os.walk(top):  # symlinked folders are not entered
        subfolders[:] = sorted(s for s in subfolders if s != "node_modules")
        for name in sorted(names):
            if not name.endswith(".js"):
                continue
            path = Path(folder) / name
            real = path.resolve()
            if real.is_relative_to(root) and real.is_file():
                yield path.relative_to(root).as_posix()


def _digest(root: Path, files: frozenset[str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256((root / name).read_bytes()).digest())
    return digest.hexdigest()[:_TAG_LENGTH]


# -- the import map --------------------------------------------------------------------


def _import_map(root: Path, packages: list[Package], files: frozenset[str], prefix: str) -> str:
    """Top-level copies in ``imports``; a nested copy, for the packages that resolve
    to it, in ``scopes`` under the importing package's folder."""
    top = {p.name: p for p in packages if "/node_modules/" not in p.where}
    imports: dict[str, str] = {}
    for package in top.values():
        imports.update(_entries(package, files, prefix))
    scopes: dict[str, dict[str, str]] = {}
    for package in packages:
        for name in _dependencies(package):
            dependency = _resolve(root, package, name)
            if dependency is not None and top.get(name) != dependency:
                scope = scopes.setdefault(f"{prefix}{package.where}/", {})
                scope.update(_entries(dependency, files, prefix))
    document: dict[str, Any] = {"imports": imports}
    if scopes:
        document["scopes"] = scopes
    text = json.dumps(document, separators=(",", ":"), sort_keys=True)
    # safe inside <script>: a package name can never close the element
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _entries(package: Package, files: frozenset[str], prefix: str) -> dict[str, str]:
    """Specifier → URL for what ``package`` exports; one ``name/`` prefix when every
    export is the file of the same name."""
    name, base = package.name, f"{prefix}{package.where}/"
    exports = _subpaths(package)
    if exports is None:  # no "exports": the main file, and any file by its path
        main = _relative(package.manifest.get("module") or package.manifest.get("main"))
        main = main or "index.js"
        _listed(package, main, files)
        return {name: base + main, name + "/": base}
    entries: dict[str, str] = {}
    identity = any(subpath != "." for subpath in exports)
    for subpath, target in exports.items():
        if "*" in subpath:
            entries.update(_pattern(package, subpath, target, base))
            identity = False
            continue
        if not _listed(package, target, files, required=subpath == "."):
            continue
        if subpath != ".":
            entries[f"{name}/{subpath[2:]}"] = base + target
            identity = identity and subpath[2:] == target
        else:
            entries[name] = base + target
    if identity:
        entries = {k: v for k, v in entries.items() if k == name}
        entries[name + "/"] = base
    return entries


def _subpaths(package: Package) -> dict[str, str] | None:
    """``exports`` as {"." or "./sub": "file relative to the package"} (conditions chosen)."""
    exports = package.manifest.get("exports")
    if exports is None:
        return None
    if isinstance(exports, str) or (
        isinstance(exports, dict) and not any(k.startswith(".") for k in exports)
    ):
        exports = {".": exports}
    if not isinstance(exports, dict):
        raise VendorError(f"{package.where}/package.json: exports is neither a path nor a map")
    chosen = {}
    for subpath, value in exports.items():
        target = _condition(value)
        if target is not None:
            relative = _relative(target)
            if relative is None:
                raise VendorError(f"{package.where}: export {subpath} leaves the package")
            chosen[subpath] = relative
    return chosen


def _condition(value: Any) -> str | None:
    """The path a browser's ``import`` gets from an export's value (None: not exported)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return next((t for t in map(_condition, value) if t is not None), None)
    if isinstance(value, dict):
        for condition in CONDITIONS:
            if condition in value:
                return _condition(value[condition])
    return None


def _relative(target: Any) -> str | None:
    """``./dist/index.js`` → ``dist/index.js``; None for anything reaching outside."""
    if not isinstance(target, str):
        return None
    path = PurePosixPath(target)
    if path.is_absolute() or ".." in path.parts:
        return None
    return path.as_posix().removeprefix("./") if path.parts else None


def _listed(package: Package, target: str, files: frozenset[str], required: bool = True) -> bool:
    if f"{package.where}/{target}" in files:
        return True
    if required:
        raise VendorError(f"{package.where}: its entry point {target} is not a served .js file")
    return False


def _pattern(package: Package, subpath: str, target: str, base: str) -> dict[str, str]:
    """``"./sub/*": "./dist/sub/*"`` as a prefix; other patterns cannot be mapped."""
    stem, star, end = subpath.partition("*")
    into = target[:-1]
    simple = star and not end and target.endswith("*") and target.count("*") == 1
    if simple and stem.endswith("/") and (into == "" or into.endswith("/")):
        return {f"{package.name}/{stem[2:]}": base + into}
    raise VendorError(f"{package.where}: export pattern {subpath} cannot be put in an import map")
