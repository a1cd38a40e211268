"""Find, download and verify the published release files named in data/sources.json.

Every input comes from a public GitHub repository at a pinned commit, so a user with
internet needs nothing else: a file is taken from ``--source DIR`` when given, else from
``../shared/datasets`` when that exists, else from the download cache, else downloaded
(resuming a ``.part`` file with HTTP Range) into the cache. Nothing is used, and nothing
enters the cache, before its size, SHA-256 and git blob SHA-1 agree with the manifest
wherever the manifest knows them.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import lzma
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from utils.errors import InputError
from utils.files import check_folder_path, read_json
from utils.project import PROJECT_ROOT

log = logging.getLogger(__name__)

MANIFEST = PROJECT_ROOT / "data" / "sources.json"
SHARED = PROJECT_ROOT.parent / "shared" / "datasets"
BASE_URL_ENV = "RIN_DATA_BASE_URL"
CACHE_ENV = "RIN_CACHE"
ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")  # matched in lower case
CHUNK = 1 << 16
ATTEMPTS = 5  # tries per download, counted only while each try brings new bytes


class FetchError(InputError):
    """A file that could not be found, downloaded or verified; one line per file in the message."""


class NotFound(FetchError):
    """The server answered 404."""


def archive_problem(error: Exception) -> str:
    """One line on why an archive could not be unpacked (tarfile lists every compression it tried)."""
    if isinstance(error, EOFError):
        return "it ends early: a download cut short?"
    if isinstance(error, tarfile.ReadError) and "\n" in str(error):
        return "not a tar archive, plain or compressed with gzip, bzip2 or xz"
    return " ".join(str(error).split()) or type(error).__name__


def shared_for(source: str | None) -> Path | None:
    """The shared datasets folder where no --source is given and it exists (it is tried before the cache)."""
    return SHARED if source is None and SHARED.is_dir() else None


def default_cache() -> Path:
    """$RIN_CACHE, else $XDG_CACHE_HOME/rin, else ~/.cache/rin: outside the clone, shared by all clones."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "rin"


def file_digests(path: Path) -> dict:
    """Size, SHA-256 and git blob SHA-1 of a file, read in chunks (NYT train is 30 MB)."""
    size = path.stat().st_size
    sha1, sha256 = hashlib.sha1(b"blob %d\0" % size), hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            sha1.update(chunk)
            sha256.update(chunk)
    return {"size": size, "sha256": sha256.hexdigest(), "git_sha1": sha1.hexdigest()}


@dataclass
class Manifest:
    """data/sources.json: for each file of the release layout, its repository, commit, path and checksums."""

    files: dict[str, dict]
    base_url: str
    url_layout: str
    path: Path

    @classmethod
    def load(cls, path: str | Path = MANIFEST) -> Manifest:
        data = read_json(Path(path))
        try:
            return cls(files=data["files"], base_url=data["base_url"], url_layout=data["url_layout"], path=Path(path))
        except (KeyError, TypeError):
            raise InputError(f"{path}: not a sources manifest (needs files, base_url and url_layout)") from None

    def entry(self, relative: str) -> dict:
        if relative not in self.files:
            raise FetchError(f"{relative}: not in {self.path}, so it cannot be located or verified")
        return self.files[relative]

    def url(self, relative: str, base_url: str | None = None) -> str:
        entry = self.entry(relative)
        return self.url_layout.format(base_url=(base_url or self.base_url).rstrip("/"), repo=entry["repo"],
                                      commit=entry["commit"], path=entry["path"])

    def mismatch(self, path: Path, relative: str) -> str | None:
        """Why ``path`` is not the published ``relative`` (``None`` when every known checksum agrees)."""
        expected = self.entry(relative)
        got = file_digests(path)
        for key, what in (("size", "size"), ("sha256", "SHA-256"), ("git_sha1", "git blob SHA-1")):
            if expected.get(key) is not None and got[key] != expected[key]:
                return f"{what} {got[key]} differs from the published {expected[key]} ({relative}, {self.path.name})"
        if expected.get("git_sha1") is None and expected.get("sha256") is None:
            return f"no checksum known for {relative} in {self.path.name}"
        return None


def _fetch_once(url: str, part: Path, timeout: float, desc: str) -> None:
    """One HTTP GET into ``part``, continuing it with a Range request when it holds bytes already."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            return  # the .part holds the whole file already; verification decides
        if error.code == 404:
            raise NotFound(f"{url}: HTTP 404 (not found)") from None
        raise
    with response:
        part.parent.mkdir(parents=True, exist_ok=True)
        if offset and response.status != 206:
            offset = 0  # the server ignores Range: start again
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        with open(part, "ab" if offset else "wb") as out, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=desc, disable=None, leave=False) as bar:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size < total:
        raise http.client.IncompleteRead(b"", total - part.stat().st_size)


def download(url: str, part: Path, desc: str, timeout: float = 60) -> None:
    """Download ``url`` into ``part``, resuming after a cut connection (and from an earlier run's ``.part``).

    A try that brings no new bytes ends it (an unreachable host fails at once); the
    ``.part`` file stays for the next run to resume. Raises :class:`FetchError`.
    """
    for _ in range(ATTEMPTS):
        before = part.stat().st_size if part.exists() else 0
        try:
            _fetch_once(url, part, timeout, desc)
            return
        except NotFound:
            raise
        except urllib.error.HTTPError as error:
            raise FetchError(f"{url}: HTTP {error.code} ({error.reason})") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", None) or error
            now = part.stat().st_size if part.exists() else 0
            if now <= before:
                raise FetchError(f"{url}: {reason}") from None
            log.warning("%s: connection lost after %d bytes (%s); resuming", url, now, reason)
    raise FetchError(f"{url}: still incomplete after {ATTEMPTS} tries; run again to resume from {part}")


@dataclass
class Gathered:
    """The verified local path of each input, where it came from, and the inputs a source folder lacks."""

    paths: dict[str, Path] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)  # taken despite their checksums (--no_verify)


class Inputs:
    """Where input files come from: a local folder or archive, a URL of a folder or archive, or the manifest.

    ``source`` is a folder, an archive (.zip, .tar.gz and the like) or a URL (``--source``), or ``None`` for the
    manifest: then each file is taken from ``shared`` when there, else from the cache, else downloaded. A source
    may lack files (those splits are not built); the manifest may not.
    """

    def __init__(self, manifest: Manifest, source: str | None, cache: Path, base_url: str | None = None,
                 shared: Path | None = None, no_verify: bool = False) -> None:
        self.manifest, self.cache, self.base_url, self.no_verify = manifest, cache, base_url, no_verify
        self.source, self.shared = source, shared
        self.url = source if source and source.startswith(("http://", "https://")) else None
        local = Path(source) if source and not self.url else None
        self.local_archive = local if local and local.is_file() and local.name.lower().endswith(ARCHIVES) else None
        if local and not (local.is_dir() or self.local_archive):
            raise InputError(f"--source {source}: " + (f"a file, not a folder or a {'/'.join(ARCHIVES)} archive"
                                                       if local.is_file() else "no such folder or archive"))
        self.archive = bool(self.local_archive or self.url and self.url.lower().endswith(ARCHIVES))
        # where a URL's files, or an archive's contents, are kept: by the URL, or by the local archive's path, size
        # and time (a new archive under the same name is unpacked again)
        key = self.url or (self.local_archive and f"{self.local_archive.resolve()} {self.local_archive.stat().st_size}"
                           f" {self.local_archive.stat().st_mtime_ns}")
        self.url_cache = cache / "sources" / hashlib.sha1(key.encode()).hexdigest()[:16] if key else None

    def describe(self) -> str:
        if self.source:
            return self.source
        shared = f"{self.shared}, then " if self.shared else ""
        return f"{shared}{self.cache} (downloads from {self.base_url or self.manifest.base_url})"

    def gather(self, relatives: list[str]) -> Gathered:
        """Locate and verify every file in ``relatives``; raise FetchError listing every failure."""
        found, errors = Gathered(), []
        root = self._archive_tree() if self.archive else None
        for relative in dict.fromkeys(relatives):
            try:
                path, origin = self._locate(relative, root)
            except FetchError as error:
                errors.append(str(error))
                continue
            if path is None:
                found.missing.append(relative)
                continue
            problem = self.manifest.mismatch(path, relative)
            if problem and not self.no_verify:
                if self.archive:  # its unpacked copy is removed below: name the file in the archive
                    path, remedy = origin, "pass --no_verify to use it anyway, or fix the archive"
                else:
                    remedy = ("delete it to download it again" if self.cache in path.parents
                              else "pass --no_verify to use it anyway")
                errors.append(f"{path}: {problem}; {remedy}")
                continue
            if problem:
                log.warning("%s: %s (accepted: --no_verify)", path, problem)
                found.unverified.append(relative)
            found.paths[relative], found.origins[relative] = path, origin
        if self.archive and self.url_cache:
            if errors:
                shutil.rmtree(self.url_cache, ignore_errors=True)  # never keep an archive that failed
            else:
                (self.url_cache / ".complete").touch()  # set only once its files verified
                if self.local_archive and not found.unverified:  # only now: a version that fails (or is taken
                    self._forget_earlier_versions()               # with --no_verify) leaves the verified one
        if errors:
            raise FetchError("\n".join(errors))
        return found

    def _locate(self, relative: str, archive_root: Path | None) -> tuple[Path | None, str]:
        if archive_root is not None:
            path = archive_root / relative
            return (path if path.is_file() else None), f"{self.url or self.local_archive} ({relative})"
        if self.url:
            url = self.url.rstrip("/") + "/" + relative
            try:
                return self._cached_download(url, self.url_cache / relative, relative), url
            except NotFound:
                return None, url
            except FetchError as error:
                raise FetchError(f"{error}; check the URL, or download the folder by hand and pass it as --source "
                                 "DIR") from None
        if self.source:
            path = Path(self.source) / relative
            return (path if path.is_file() else None), str(path)
        if self.shared is not None and (self.shared / relative).is_file():
            return self.shared / relative, str(self.shared / relative)
        url = self.manifest.url(relative, self.base_url)
        target = self.cache / relative
        try:
            return self._cached_download(url, target, relative), url
        except FetchError as error:
            raise FetchError(f"{error}; download it by hand to {target}, or pass --source DIR (a folder with "
                             f"the release layout, {relative} inside)") from None

    def _cached_download(self, url: str, target: Path, relative: str) -> Path:
        """``target`` if already cached, else ``url`` downloaded and verified, then renamed to ``target``."""
        if target.is_file():
            return target  # verified by the caller like any other file
        part = target.with_name(target.name + ".part")
        check_folder_path(target.parent, "--cache")  # before the download, not an OS error after it
        log.info("downloading %s", url)
        download(url, part, relative)
        problem = self.manifest.mismatch(part, relative)
        if problem and not self.no_verify:
            part.unlink()
            raise FetchError(f"{url}: {problem}; the download was discarded")
        os.replace(part, target)
        return target

    def _forget_earlier_versions(self) -> None:
        """Remove the unpacked trees of earlier versions (other size or time) of this local archive: each is as
        large as the release, and only the newest can be used again."""
        assert self.url_cache and self.local_archive
        origin = str(self.local_archive.resolve())
        for other in self.url_cache.parent.iterdir():
            label = other / "archive.txt"
            if other != self.url_cache and label.is_file() and label.read_text() == origin:
                shutil.rmtree(other, ignore_errors=True)
                log.info("removed the unpacked copy of an earlier version of %s from %s", origin, other)

    def _archive_tree(self) -> Path:
        """The archive's contents in the cache, downloaded (or read from the local archive) and extracted unless
        a verified copy is there."""
        assert self.url_cache
        where = self.url or str(self.local_archive)
        tree = self.url_cache / "tree"
        if not (self.url_cache / ".complete").exists():
            for unverified in ("tree", "tree.tmp"):  # a download's .part stays: the next try resumes it
                shutil.rmtree(self.url_cache / unverified, ignore_errors=True)
            if self.local_archive:
                name, part = self.local_archive.name, self.local_archive
            else:
                name = Path(where.split("?")[0]).name
                part = self.url_cache / (name + ".part")
                check_folder_path(self.url_cache, "--cache")
                log.info("downloading %s", where)
                try:
                    download(where, part, name)
                except NotFound as error:
                    raise FetchError(str(error)) from None
                except FetchError as error:
                    raise FetchError(f"{error}; check the URL, or download the archive by hand and pass the file as "
                                     "--source") from None
            staging = self.url_cache / "tree.tmp"
            self.url_cache.mkdir(parents=True, exist_ok=True)
            try:
                if name.lower().endswith(".zip"):
                    with zipfile.ZipFile(part) as bundle:
                        bundle.extractall(staging)
                else:
                    with tarfile.open(part) as bundle:
                        bundle.extractall(staging, filter="data")
            except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError,
                    gzip.BadGzipFile) as error:
                shutil.rmtree(self.url_cache, ignore_errors=True)  # so that the next try downloads it again
                raise FetchError(f"{where}: not a readable archive ({archive_problem(error)})") from None
            if not self.local_archive:
                part.unlink()
            os.replace(staging, tree)
            if self.local_archive:  # which archive this tree unpacks, for _forget_earlier_versions
                (self.url_cache / "archive.txt").write_text(str(self.local_archive.resolve()))
        children = [p for p in tree.iterdir() if p.is_dir()]
        if len(children) == 1 and not any((tree / d).exists() for d in ("casrel", "hrl", "rin", "copyre_raw")):
            return children[0]  # the archive wraps the layout in one top folder
        return tree
