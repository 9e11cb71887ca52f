"""Mutation testing of the modules that decide: mutmut over each, against its fast tests.

    python scripts/mutation.py              every module of tests/mutation/modules.toml
    python scripts/mutation.py --changed    those a change touched (see ``changed_modules``)
    python scripts/mutation.py MODULE ...   the given ones (paths as in modules.toml)

mutmut copies the project into ``mutants/``, changes one operator of one
function at a time and runs the tests that reach that function (it learns
which from one traced run of the selected tests). A mutant no test notices
"survives". The run fails when a module scores under ``MIN_SCORE`` or when a
survivor is not in tests/mutation/accepted.toml, where each accepted one says
why it cannot change behaviour. Every run starts from an empty ``mutants/``: a
result kept from an earlier run could hide a test weakened since.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES_FILE = Path("tests/mutation/modules.toml")
ACCEPTED_FILE = Path("tests/mutation/accepted.toml")
# A change to these may change any module's result.
MACHINERY = (Path("scripts/mutation.py"), MODULES_FILE, ACCEPTED_FILE)
LOG = Path("mutants/mutmut-run.log")
MIN_SCORE = 0.90
DETECTED = {"killed", "timeout", "caught by type check", "segfault"}


@dataclass
class Result:
    module: str
    statuses: dict[str, str] = field(default_factory=dict)  # mutant name → mutmut's status

    @property
    def survivors(self) -> list[str]:
        return sorted(name for name, status in self.statuses.items() if status not in DETECTED)

    @property
    def score(self) -> float:
        total = len(self.statuses)
        return (total - len(self.survivors)) / total if total else 1.0


def load_modules() -> dict[str, list[str]]:
    """Module path → the tests (files, folders or pytest node ids) that reach it."""
    modules = tomllib.loads(MODULES_FILE.read_text(encoding="utf-8"))["modules"]
    return {module: list(tests) for module, tests in modules.items()}


def load_accepted() -> dict[str, dict[str, str]]:
    """Mutant name → its ``change`` (the mutated line) and the ``reason`` it is harmless."""
    return dict(tomllib.loads(ACCEPTED_FILE.read_text(encoding="utf-8")).get("survivor", {}))


def git(*args: str) -> str | None:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def base_commit(explicit: str | None) -> str | None:
    """What a change is measured against: the given ref, else the merge base with the main
    branch, else (on the main branch itself) the previous commit; None without history."""
    if explicit:
        return git("rev-parse", "--verify", f"{explicit}^{{commit}}")
    head = git("rev-parse", "HEAD")
    for main in ("origin/main", "main"):
        base = git("merge-base", "HEAD", main)
        if base and base != head:
            return base
    return git("rev-parse", "--verify", "HEAD~1^{commit}")


def changed_modules(modules: dict[str, list[str]], base: str) -> list[str]:
    """The modules whose source or tests differ from ``base`` (committed or not)."""
    listed = git("diff", "--name-only", base, "--") or ""
    untracked = git("ls-files", "--others", "--exclude-standard") or ""
    changed = {Path(p) for p in (listed + "\n" + untracked).split("\n") if p}
    if changed & set(MACHINERY):
        return list(modules)

    def touched(path: str) -> bool:
        target = Path(path.split("::")[0])
        return any(p == target or target in p.parents for p in changed)

    return [m for m, tests in modules.items() if touched(m) or any(touched(t) for t in tests)]


def run_mutmut(modules: dict[str, list[str]], selected: list[str], jobs: int) -> None:
    """mutmut over ``selected``, with only their tests; results land in ``mutants/``."""
    shutil.rmtree("mutants", ignore_errors=True)
    # The tests start what they need (a private redis-server at most); should one reach
    # for the machine's Redis, PostgreSQL or RabbitMQ, it finds port 1, closed.
    os.environ.update(
        MAILPIPE_REDIS_URL="redis://127.0.0.1:1/0",
        MAILPIPE_BROKER_URL="redis://127.0.0.1:1/0",
        MAILPIPE_TEST_POSTGRES_URL="postgresql+psycopg://nobody@127.0.0.1:1/none",
        MAILPIPE_TEST_AMQP_URL="amqp://nobody:nobody@127.0.0.1:1//",
    )
    tests = sorted({t for m in selected for t in modules[m]})
    # The mutmut section of pyproject.toml holds what never changes; what to mutate and
    # which tests to run come from modules.toml, set before mutmut reads its config.
    from mutmut.configuration import config

    cfg = config()
    cfg.only_mutate = list(selected)
    cfg.pytest_add_cli_args_test_selection = tests
    from mutmut.__main__ import cli

    # mutmut draws a progress line per mutant: into a log, and its tail on failure.
    Path("mutants").mkdir()
    print(f"mutmut: {', '.join(selected)} ({LOG})", flush=True)
    saved = os.dup(1), os.dup(2)
    with LOG.open("w") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            cli.main(["run", "--max-children", str(jobs)], standalone_mode=False)
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
    if code:
        print(LOG.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise SystemExit(f"mutmut failed ({code}): see {LOG}")


def results_of(selected: list[str]) -> list[Result]:
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.stats import status_by_exit_code

    results = []
    for module in selected:
        data = SourceFileMutationData(path=module)
        data.load()
        statuses = {k: status_by_exit_code[v] for k, v in data.exit_code_by_key.items()}
        results.append(Result(module, statuses))
    return results


def change_of(mutant: str, module: str) -> str:
    """The mutated lines of ``mutant``, one string: what accepted.toml pins it by."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    diff = get_diff_for_mutant(mutant, path=module).splitlines()
    added = [line[1:].strip() for line in diff[2:] if line.startswith("+")]
    return " ⏎ ".join(added)


def _function(mutant: str) -> str:
    """``pkg.module.x_name__mutmut_12`` → ``pkg.module.x_name``."""
    return mutant.rsplit("__mutmut_", 1)[0]


def report(results: list[Result], accepted: dict[str, dict[str, str]]) -> list[str]:
    """Print the table; return the problems that fail the run."""
    problems: list[str] = []
    print("\n| module | mutants | survived | score |\n| --- | --- | --- | --- |")
    for r in results:
        print(f"| `{r.module}` | {len(r.statuses)} | {len(r.survivors)} | {r.score:.0%} |")
        if not r.statuses:
            problems.append(f"{r.module}: no mutants (is it in modules.toml with its tests?)")
        elif r.score < MIN_SCORE:
            problems.append(f"{r.module}: score {r.score:.1%} is under {MIN_SCORE:.0%}")
        # A survivor is matched by its function and its mutated line, not by mutmut's number,
        # which shifts whenever a mutant is added above it in the same function. One function
        # may hold the same line twice (two identical returns): each entry matches one survivor.
        pinned: dict[tuple[str, str | None], list[str]] = {}
        for name, entry in sorted(accepted.items()):
            pinned.setdefault((_function(name), entry.get("change")), []).append(name)
        matched: set[str] = set()
        for mutant in r.survivors:
            status, change = r.statuses[mutant], change_of(mutant, r.module)
            same = pinned.get((_function(mutant), change))
            entry = same.pop(0) if same else None
            if entry is None:
                problems.append(
                    f'{mutant} {status}, not accepted:\n  [survivor."{mutant}"]\n'
                    f"  change = {json.dumps(change, ensure_ascii=False)}\n  reason = ?"
                )
            else:
                matched.add(entry)
        prefix = r.module.removesuffix(".py").replace("/", ".") + "."
        for mutant in sorted(m for m in accepted if m.startswith(prefix)):
            if mutant not in matched:
                problems.append(f"{mutant} is accepted but was killed or is gone: remove it")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="paths as in tests/mutation/modules.toml")
    parser.add_argument("--changed", action="store_true", help="only modules a change touched")
    parser.add_argument("--base", help="compare with this ref (default: the merge base)")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATION_JOBS", "2")))
    args = parser.parse_args()
    os.chdir(ROOT)
    started = time.monotonic()
    modules = load_modules()
    unknown = [m for m in args.modules if m not in modules]
    if unknown:
        parser.error(f"not in {MODULES_FILE}: {', '.join(unknown)}")
    selected = args.modules or list(modules)
    if args.changed:
        base = base_commit(args.base)
        if base is None:
            print("no earlier commit to compare with: every module")
        else:
            selected = [m for m in selected if m in changed_modules(modules, base)]
            print(f"changed since {base[:12]}: {', '.join(selected) or 'no module of the list'}")
            if not selected:
                return 0
    run_mutmut(modules, selected, args.jobs)
    results = results_of(selected)
    problems = report(results, load_accepted())
    print(Counter(s for r in results for s in r.statuses.values()))
    print(f"mutation run: {time.monotonic() - started:.0f} s")
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
