"""PostgreSQL 15 (Debian's packages) with the DocumentDB extension, built from pinned sources.

What Debian 12 lacks is built from source: DocumentDB (FerretDB's tag of it), libbson
1.28 (Debian has 1.23; DocumentDB needs ``BSON_SUBTYPE_SENSITIVE``), pg_cron 1.6.3
(Debian's 1.4.2 cannot run DocumentDB's "every 2 seconds" jobs) and pgvector (not
packaged). The sources are the tarballs of a folder (``MEDCARD_DB_SOURCES``, default
``../shared/db-sources`` beside the checkout when it exists), checked by their SHA-256;
otherwise the same tagged commits are downloaded from their public repositories and
checked by the digest of the extracted tree (an archive's bytes differ from one
download to the next, its files do not).

The built extension files are staged in the cache once; installing them into
PostgreSQL's directories (root only) takes a second on later runs.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from medcard.stack.process import StackError, tail

PG_MAJOR = 15
PG_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
PG_LIB = Path(f"/usr/lib/postgresql/{PG_MAJOR}/lib")
PG_EXTENSIONS = Path(f"/usr/share/postgresql/{PG_MAJOR}/extension")
DEBIAN_PACKAGES = (
    f"postgresql-{PG_MAJOR}", f"postgresql-server-dev-{PG_MAJOR}", f"postgresql-{PG_MAJOR}-rum",
    f"postgresql-{PG_MAJOR}-postgis-3", "libpcre2-dev", "libintelrdfpmath-dev", "libkrb5-dev",
    "cmake", "pkg-config", "make", "gcc", "g++",
)
RECIPE = 1
"""Bumped when the build steps change, so a cached stage built the old way is rebuilt."""


@dataclass(frozen=True)
class Source:
    """One pinned source tree: where it comes from and how it is checked."""

    name: str
    repo: str
    tag: str
    commit: str
    license: str
    tarball: str
    sha256: str
    tree: str
    """SHA-256 over the sorted (path, file digest) of :attr:`checked` in the extracted tree."""
    checked: tuple[str, ...] = ("",)
    """The parts of the tree the tree digest covers ('' = all of it)."""

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}/archive/{self.commit}.tar.gz"


SOURCES = (
    Source("documentdb", "FerretDB/documentdb", "v0.106.0-ferretdb-2.5.0",
           "beb9d25d9845477c85559d3293cd1f929cdf2b9c", "MIT", "documentdb-v0.106.0-ferretdb-2.5.0.tar.gz",
           "3eea614fe7f1f0db001ca6d35e258842f880bd19e2283f8fa3a87b1361c4715c",
           "719069709844893a3406277ce26072e5c6584c82e047c266eb8678061396f214"),
    Source("mongo-c-driver", "mongodb/mongo-c-driver", "1.28.0",
           "a463a46c38cb6b552f2da4b3ae63e393dfe0a9a6", "Apache-2.0", "mongo-c-driver-1.28.0-libbson.tar.gz",
           "95a0c75c2b1c448feb1aedeb4f403cceaac75fb387c5c01a71fddd68e7739ebe",
           "627c1a91f5a92b62d4dd2576e59331df02200a98d451bd768d2a57ba3866eab9",
           ("CMakeLists.txt", "VERSION_CURRENT", "build/cmake", "src/common", "src/libbson/src")),
    Source("pg_cron", "citusdata/pg_cron", "v1.6.3",
           "9d0576c64edd90fb3d8ac30763296a8106315638", "PostgreSQL", "pg_cron-v1.6.3.tar.gz",
           "c525dbe88dc22c2a58fe82565bb9602690e1c05c4ffd3d2ccee971ac52d59904",
           "a622a3794d38b93b97858aef962f8d5edba2b69b20aedc149b89f4198b29903c"),
    Source("pgvector", "pgvector/pgvector", "v0.8.0",
           "2627c5ff775ae6d7aef0c430121ccf857842d2f2", "PostgreSQL", "pgvector-v0.8.0.tar.gz",
           "958aa543a05a60c3696f7fc3bc5722be5a1c413b0ee0e1811f898128526b9c8a",
           "9fbf114d13eec86b8ff9445ecbc5ad1a3ead20c721bae3a539388dd9ae9f020a"),
)
STAMP = f"pg={PG_MAJOR} recipe={RECIPE} " + " ".join(f"{s.name}={s.commit[:12]}" for s in SOURCES)


def tree_digest(root: Path, parts: tuple[str, ...] = ("",)) -> str:
    """SHA-256 over the sorted relative paths and contents of the files under ``parts``."""
    digest = hashlib.sha256()
    files = sorted(
        path for part in parts for path in ([root / part] if (root / part).is_file() else (root / part).rglob("*"))
        if path.is_file() and not path.is_symlink()
    )
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def sources_folder(repo_root: Path) -> Path | None:
    """``$MEDCARD_DB_SOURCES``, else ``../shared/db-sources`` beside the checkout, else None."""
    named = os.environ.get("MEDCARD_DB_SOURCES")
    if named:
        if not Path(named).is_dir():
            raise StackError(f"MEDCARD_DB_SOURCES={named} is not a folder")
        return Path(named)
    beside = repo_root.parent / "shared" / "db-sources"
    return beside if beside.is_dir() else None


def _extract(data: bytes, dest: Path) -> Path:
    """Unpack a tarball whose one top folder becomes ``dest``."""
    shutil.rmtree(dest, ignore_errors=True)
    scratch = dest.with_name(dest.name + ".unpack")
    shutil.rmtree(scratch, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(scratch, filter="data")
    tops = list(scratch.iterdir())
    if len(tops) != 1 or not tops[0].is_dir():
        raise StackError(f"unexpected archive layout for {dest.name}: {[t.name for t in tops]}")
    tops[0].rename(dest)
    scratch.rmdir()
    return dest


def fetch_sources(into: Path, folder: Path | None) -> None:
    """Extract every pinned source into ``into/<name>``, checked; download when no folder."""
    into.mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        if folder is not None:
            path = folder / source.tarball
            if not path.is_file():
                raise StackError(f"{path} is missing (the pinned {source.name} {source.tag} source tarball)")
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != source.sha256:
                raise StackError(f"{path}: SHA-256 differs from the pinned {source.sha256}")
            _extract(data, into / source.name)
            continue
        try:
            with urllib.request.urlopen(source.url, timeout=120) as answer:
                data = answer.read()
        except OSError as exc:
            raise StackError(
                f"downloading {source.name} {source.tag} from {source.url} failed ({exc}); "
                "set MEDCARD_DB_SOURCES to a folder holding the pinned tarballs") from exc
        tree = _extract(data, into / source.name)
        if tree_digest(tree, source.checked) != source.tree:
            raise StackError(f"{source.url}: the files differ from the pinned {source.name} {source.tag}")


def missing_packages() -> list[str]:
    """The Debian packages of :data:`DEBIAN_PACKAGES` that are not installed (one dpkg-query)."""
    found = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Status}\n", *DEBIAN_PACKAGES],
                           capture_output=True, text=True, check=False)
    installed = {line.split()[0] for line in found.stdout.splitlines() if line.endswith("install ok installed")}
    return [package for package in DEBIAN_PACKAGES if package not in installed]


def ensure_packages() -> None:
    """Install the Debian packages the build and the server need (apt-get, as root)."""
    if shutil.which("dpkg-query") is None:
        raise StackError("the local database needs Debian's PostgreSQL 15 packages (dpkg-query not found)")
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise StackError("missing Debian packages: " + " ".join(missing)
                         + f"\n  install them with: sudo apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def _make(log: Path, *args: str, cwd: Path, env: dict[str, str]) -> None:
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(args)}  (in {cwd})\n".encode())
        out.flush()
        done = subprocess.run(list(args), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise StackError(f"building the database extensions failed at '{' '.join(args)}' (see {log}):\n{tail(log)}")


def stage_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / f"documentdb-stage-pg{PG_MAJOR}"


def build_extensions(cache_dir: Path, repo_root: Path) -> Path:
    """Build libbson, pg_cron, pgvector and DocumentDB into the staging folder (once)."""
    stage = stage_dir(cache_dir)
    if (stage / ".stamp").is_file() and (stage / ".stamp").read_text().strip() == STAMP:
        return stage
    shutil.rmtree(stage, ignore_errors=True)
    build = Path(cache_dir) / "documentdb-build"
    shutil.rmtree(build, ignore_errors=True)
    fetch_sources(build, sources_folder(repo_root))
    log = Path(cache_dir) / "documentdb-build.log"
    log.write_text("")
    jobs = str(os.cpu_count() or 2)
    (build / "pkgconfig").mkdir()
    # DocumentDB asks pkg-config for "intelmathlib"; Debian's libintelrdfpmath-dev ships the
    # same library (libbidgcc000.a, built with -fPIC) under another name.
    (build / "pkgconfig" / "intelmathlib.pc").write_text(
        "Name: intelmathlib\nDescription: Intel Decimal Floating-Point Math Library (Debian)\n"
        "Version: 2.0 Update 2\nCflags: -I/usr/include\nLibs: -lbidgcc000\n")
    env = {**os.environ, "PKG_CONFIG_PATH": f"{build / 'libbson/lib/pkgconfig'}:{build / 'pkgconfig'}"}
    driver = build / "mongo-c-driver"
    _make(log, "cmake", "-S", str(driver), "-B", str(driver / "_build"), "-DENABLE_MONGOC=OFF",
          "-DENABLE_TESTS=OFF", "-DENABLE_EXAMPLES=OFF", "-DENABLE_SHARED=OFF", "-DENABLE_STATIC=ON",
          "-DENABLE_PIC=ON", "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_C_FLAGS=-fPIC",
          f"-DCMAKE_INSTALL_PREFIX={build / 'libbson'}", cwd=build, env=env)
    _make(log, "make", "-s", "-C", str(driver / "_build"), f"-j{jobs}", "install", cwd=build, env=env)
    for folder in ("pg_cron", "pgvector", "documentdb/pg_documentdb_core", "documentdb/pg_documentdb"):
        flags = ["with_llvm=no", *(["OPTFLAGS="] if folder == "pgvector" else [])]
        _make(log, "make", "-s", "-C", str(build / folder), f"-j{jobs}", *flags, cwd=build, env=env)
        _make(log, "make", "-s", "-C", str(build / folder), *flags, f"DESTDIR={stage}", "install", cwd=build, env=env)
    if not (stage / PG_LIB.relative_to("/") / "pg_documentdb.so").is_file():
        raise StackError(f"the DocumentDB build left no pg_documentdb.so (see {log})")
    (stage / ".stamp").write_text(STAMP + "\n")
    shutil.rmtree(build, ignore_errors=True)
    return stage


INSTALLED_STAMP = PG_EXTENSIONS / "medcard-documentdb.stamp"


def extensions_installed() -> bool:
    return INSTALLED_STAMP.is_file() and INSTALLED_STAMP.read_text().strip() == STAMP


def install_extensions(cache_dir: Path, repo_root: Path) -> None:
    """Packages, build (cached) and the extension files in PostgreSQL's folders."""
    ensure_packages()
    if extensions_installed():
        return
    stage = build_extensions(cache_dir, repo_root)
    if not os.access(PG_LIB, os.W_OK):
        raise StackError(f"the DocumentDB extension is built in {stage} but is not installed in {PG_LIB}; "
                         "run 'sudo medcard stack install' once")
    for path in sorted((stage / "usr").rglob("*")):
        target = Path("/") / path.relative_to(stage)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            # a new inode per file: a running PostgreSQL keeps the libraries it has mapped
            target.unlink(missing_ok=True)
            shutil.copy2(path, target)
    INSTALLED_STAMP.write_text(STAMP + "\n")
