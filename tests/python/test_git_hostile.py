"""Hostile inputs through the real ``bastion-git`` binary and the official MCP Python SDK.

* a booby-trapped repository: every way the ``git`` program runs configured code (fsmonitor,
  hooks and ``core.hooksPath``, clean/smudge/process filters from ``.gitattributes``, external
  diff, textconv, pager, sshCommand, credential helper, editor, aliases, ``include.path``) points
  at a script leaving a marker; the fixture is shown armed with ``git`` itself, then every tool
  runs and succeeds and no marker appears;
* option injection in every string parameter, including refs literally named ``--format=x``;
* pathspec traversal (``..``, absolute, symlinks leading out): refused, the index untouched;
* repositories outside the roots, a root that is not a repository, a repository owned by another
  user.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from gitclient import call, err, error_code, git_session, init_repo, ok, run_git

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

HOOKS = [
    "applypatch-msg", "pre-applypatch", "post-applypatch", "pre-commit", "pre-merge-commit",
    "prepare-commit-msg", "commit-msg", "post-commit", "pre-rebase", "post-checkout", "post-merge",
    "pre-push", "pre-receive", "update", "proc-receive", "post-receive", "post-update",
    "reference-transaction", "push-to-checkout", "pre-auto-gc", "post-rewrite", "sendemail-validate",
    "fsmonitor-watchman", "post-index-change",
]  # fmt: skip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def executable(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(0o755)


def trapped(base: Path, markers: Path) -> Path:
    """``base/root/repo`` with history, a feature branch, a tag, a ref named ``--format=x``, a dirty
    work tree, and every trap armed (markers go to ``markers``)."""
    markers.mkdir(parents=True)
    repo = init_repo(base / "root" / "repo")
    (repo / "a.txt").write_text("1\n2\n3\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "c.txt").write_text("c\n")
    (repo / ".gitattributes").write_text("* filter=evil diff=evil merge=evil\n")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "first")
    (repo / "a.txt").write_text("1\ntwo\n3\n")
    run_git(repo, "commit", "-q", "-am", "second")
    run_git(repo, "tag", "-a", "v1", "-m", "v1")
    run_git(repo, "checkout", "-q", "-b", "feature")
    (repo / "f.txt").write_text("f\n")
    run_git(repo, "add", "f.txt")
    run_git(repo, "commit", "-q", "-m", "feature")
    run_git(repo, "checkout", "-q", "main")
    (repo / ".git" / "refs" / "heads" / "--format=x").write_text(run_git(repo, "rev-parse", "HEAD"))
    (repo / "a.txt").write_text("1\ntwo\n3\n4\n")
    (repo / "staged.txt").write_text("s\n")
    run_git(repo, "add", "staged.txt")
    (repo / "new.txt").write_text("n\n")

    evil = base / "evil.sh"
    executable(evil, f"#!/bin/sh\ntouch '{markers}/'\"$1\"\nexit 0\n")
    e = lambda what: f"{evil} {what}"  # noqa: E731
    for hook in HOOKS:
        executable(base / "hooks" / hook, f"#!/bin/sh\n{e('hook-' + hook)}\n")
        executable(repo / ".git" / "hooks" / hook, f"#!/bin/sh\n{e('githook-' + hook)}\n")
    included = base / "included.gitconfig"
    included.write_text(f"[core]\n\teditor = {e('included-editor')}\n[alias]\n\tst = !{e('included-alias')}\n")
    settings = {
        "core.fsmonitor": e("fsmonitor"),
        "core.hooksPath": str(base / "hooks"),
        "filter.evil.clean": e("clean"),
        "filter.evil.smudge": e("smudge"),
        "filter.evil.process": e("process"),
        "diff.external": e("external-diff"),
        "diff.evil.textconv": e("textconv"),
        "diff.evil.command": e("diff-command"),
        "merge.evil.driver": e("merge-driver"),
        "core.pager": e("pager"),
        "pager.log": e("pager-log"),
        "core.sshCommand": e("ssh"),
        "core.askPass": e("askpass"),
        "core.editor": e("editor"),
        "credential.helper": "!" + e("credential"),
        "gpg.program": e("gpg"),
        "remote.origin.url": "ext::" + e("ext-remote"),
        "protocol.ext.allow": "always",
        "alias.lg": "!" + e("alias"),
        "include.path": str(included),
    }
    for key, value in settings.items():
        run_git(repo, "config", key, value)
    return repo


def markers_in(d: Path) -> list[str]:
    return sorted(p.name for p in d.rglob("*") if p.is_file())


def test_the_fixture_is_armed_for_the_git_program(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    repo = trapped(tmp_path, markers)
    run_git(repo, "status", check=False)
    run_git(repo, "-c", "filter.evil.process=", "diff", check=False)
    run_git(repo, "-c", "filter.evil.process=", "commit", "-q", "--allow-empty", "-m", "x", check=False)
    run_git(repo, "st", check=False)
    fired = markers_in(markers)
    for expected in ["fsmonitor", "process", "diff-command", "hook-pre-commit", "included-alias"]:
        assert expected in fired, fired


async def test_every_tool_succeeds_on_a_trapped_repository_and_nothing_runs(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    repo = trapped(tmp_path, markers)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        f"[core]\n\tfsmonitor = {tmp_path / 'evil.sh'} global\n[credential]\n\thelper = !{tmp_path / 'evil.sh'} gcred\n"
    )
    r = "repo"
    calls: list[tuple[str, dict[str, Any]]] = [
        ("git_status", {"repo": r}),
        ("git_status", {"repo": r, "untracked_files": "all"}),
        ("git_diff", {"repo": r}),
        ("git_diff", {"repo": r, "staged": True}),
        ("git_diff", {"repo": r, "from": "HEAD~1"}),
        ("git_diff", {"repo": r, "from": "v1", "to": "feature", "stat_only": True}),
        ("git_log", {"repo": r, "paths": ["a.txt"]}),
        ("git_log", {"repo": r, "rev": "main...feature"}),
        ("git_show", {"repo": r}),
        ("git_show", {"repo": r, "rev": "v1"}),
        ("git_show", {"repo": r, "rev": "HEAD:a.txt"}),
        ("git_blame", {"repo": r, "path": "a.txt"}),
        ("git_branches", {"repo": r}),
        ("git_tags", {"repo": r}),
        ("git_stash_list", {"repo": r}),
        ("git_add", {"repo": r, "paths": ["."]}),
        ("git_unstage", {"repo": r, "paths": ["new.txt"]}),
        ("git_commit", {"repo": r, "message": "through bastion"}),
        ("git_create_branch", {"repo": r, "name": "topic"}),
        ("git_switch", {"repo": r, "branch": "feature"}),
        ("git_switch", {"repo": r, "branch": "main"}),
        ("git_stash_push", {"repo": r, "include_untracked": True}),
        ("git_show", {"repo": r, "rev": "stash@{0}"}),
        ("git_reset", {"repo": r, "rev": "HEAD~1", "mode": "soft"}),
        ("git_restore", {"repo": r, "paths": ["a.txt"], "staged": True}),
        ("git_reset", {"repo": r, "mode": "hard"}),
        ("git_delete_branch", {"repo": r, "name": "topic", "force": True}),
    ]
    async with git_session(tmp_path / "root", destructive=True, home=home) as s:
        for tool, args in calls:
            await ok(s, tool, args)
            assert markers_in(markers) == [], f"{tool} {args} ran {markers_in(markers)}"
    assert markers_in(markers) == []


def plain_fixture(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    repo = init_repo(root / "repo")
    (repo / "a.txt").write_text("a\n")
    run_git(repo, "add", "a.txt")
    run_git(repo, "commit", "-q", "-m", "first")
    (repo / "a.txt").write_text("a\nb\n")
    run_git(repo, "commit", "-q", "-am", "second")
    head = run_git(repo, "rev-parse", "HEAD")
    (repo / ".git" / "refs" / "heads" / "--format=x").write_text(head)
    (repo / ".git" / "refs" / "heads" / "-p").write_text(head)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "private.txt").write_text("OUTSIDE-SENTINEL\n")
    (repo / "link").symlink_to(tmp_path / "outside")
    (repo / "out-link").symlink_to(tmp_path / "outside" / "private.txt")
    return root, repo


async def test_option_injection_in_every_parameter(tmp_path: Path) -> None:
    root, repo = plain_fixture(tmp_path)
    pwned = tmp_path / "pwned"
    out = f"--output={pwned}"
    r = "repo"
    refused = [
        ("git_log", {"repo": r, "rev": out}, "invalid_revision"),
        ("git_log", {"repo": r, "rev": "-p --ext-diff"}, "invalid_revision"),
        ("git_log", {"repo": r, "rev": "--format=x"}, "invalid_revision"),
        ("git_log", {"repo": r, "since": out}, "invalid_argument"),
        ("git_log", {"repo": r, "until": "--until=now"}, "invalid_argument"),
        ("git_diff", {"repo": r, "from": out}, "invalid_revision"),
        ("git_diff", {"repo": r, "from": "HEAD", "to": "-p --ext-diff"}, "invalid_revision"),
        ("git_diff", {"repo": r, "from": "--no-index"}, "invalid_revision"),
        ("git_show", {"repo": r, "rev": "--format=x"}, "invalid_revision"),
        ("git_show", {"repo": r, "rev": "-p"}, "invalid_revision"),
        ("git_blame", {"repo": r, "path": "a.txt", "rev": "--contents=/etc/hostname"}, "invalid_revision"),
        ("git_blame", {"repo": r, "path": "--contents=/etc/hostname"}, "not_found"),
        ("git_create_branch", {"repo": r, "name": "--force"}, "invalid_reference_name"),
        ("git_create_branch", {"repo": r, "name": "ok", "from": out}, "invalid_revision"),
        ("git_switch", {"repo": r, "branch": "--format=x"}, "invalid_reference_name"),
        ("git_switch", {"repo": r, "branch": "-p"}, "invalid_reference_name"),
        ("git_delete_branch", {"repo": r, "name": "--format=x"}, "invalid_reference_name"),
        ("git_delete_branch", {"repo": r, "name": "-D"}, "invalid_reference_name"),
        ("git_reset", {"repo": r, "rev": "--hard"}, "invalid_revision"),
        ("git_reset", {"repo": r, "rev": "main", "mode": "--hard"}, "invalid_argument"),
        ("git_status", {"repo": "--git-dir=/etc"}, "not_found"),
    ]
    async with git_session(root, destructive=True) as s:
        for tool, args, code in refused:
            await err(s, tool, args, code)
        # Text is text.
        log = await ok(s, "git_log", {"repo": r, "author": out, "grep": "--exec=touch x"})
        assert log["commits"] == []
        add = await ok(s, "git_add", {"repo": r, "paths": ["--all", "-A", ":(top)*", "*"]})
        assert add["staged_count"] == 0 and len(add["unmatched"]) == 4
        (repo / "a.txt").write_text("changed\n")
        await ok(s, "git_add", {"repo": r, "paths": ["a.txt"]})
        before = run_git(repo, "rev-parse", "HEAD").strip()
        done = await ok(s, "git_commit", {"repo": r, "message": "--amend"})
        assert done["parents"] == [before]
        # The refs named like options are names when spelled in full.
        shown = await ok(s, "git_show", {"repo": r, "rev": "refs/heads/--format=x", "stat_only": True})
        assert shown["commit"]["hash"] == before
        names = [b["name"] for b in (await ok(s, "git_branches", {"repo": r}))["branches"]]
        assert "--format=x" in names and "-p" in names
    assert not pwned.exists()
    assert not (repo / "x").exists()


async def test_pathspec_traversal_is_refused_and_not_staged(tmp_path: Path) -> None:
    root, repo = plain_fixture(tmp_path)
    before = run_git(repo, "ls-files", "--stage")
    cases = [
        ("../outside/private.txt", "path_outside_root"),
        ("../../outside/private.txt", "path_outside_root"),
        (str(tmp_path / "outside" / "private.txt"), "path_outside_root"),
        ("/etc/passwd", "path_outside_root"),
        ("link/private.txt", "path_outside_root"),
        ("link", "path_outside_root"),
        ("out-link", "path_outside_root"),
        (".git/config", "denied_by_glob"),
        (".git/hooks", "denied_by_glob"),
    ]
    outputs: list[str] = []
    async with git_session(root, destructive=True) as s:
        for path, code in cases:
            for tool in ["git_add", "git_unstage", "git_restore", "git_diff", "git_log", "git_status"]:
                outputs.append(await err(s, tool, {"repo": "repo", "paths": [path]}, code))
            outputs.append(await err(s, "git_blame", {"repo": "repo", "path": path}, code))
        is_error, structured, text = await call(s, "git_show", {"repo": "repo", "rev": "HEAD:../outside/private.txt"})
        outputs.append(text)
        assert error_code(is_error, structured, text) == "invalid_revision"
    assert run_git(repo, "ls-files", "--stage") == before
    assert (tmp_path / "outside" / "private.txt").read_text() == "OUTSIDE-SENTINEL\n"
    assert not any("OUTSIDE-SENTINEL" in o for o in outputs)


async def test_repositories_outside_the_roots(tmp_path: Path) -> None:
    root, repo = plain_fixture(tmp_path)
    other = init_repo(tmp_path / "other")
    (other / "o.txt").write_text("o\n")
    run_git(other, "add", "o.txt")
    run_git(other, "commit", "-q", "-m", "o")
    (root / "other-link").symlink_to(other)
    (root / "gitfile").mkdir()
    (root / "gitfile" / ".git").write_text(f"gitdir: {other / '.git'}\n")
    wt = init_repo(root / "worktree")
    run_git(wt, "config", "core.worktree", str(other))
    plain = tmp_path / "plain"
    plain.mkdir()
    async with git_session(root) as s:
        await err(s, "git_status", {"repo": "../other"}, "path_outside_root")
        await err(s, "git_log", {"repo": str(other)}, "path_outside_root")
        await err(s, "git_log", {"repo": "other-link"}, "path_outside_root")
        await err(s, "git_status", {"repo": "gitfile"}, "path_outside_root")
        await err(s, "git_status", {"repo": "worktree"}, "path_outside_root")
        await err(s, "git_status", {}, "not_a_repository")
    async with git_session(plain) as s:
        msg = await err(s, "git_status", {}, "not_a_repository")
        assert "never creates" in msg
    async with git_session(repo / ".git") as s:
        # A root inside the git directory: the work tree would be outside it.
        await err(s, "git_log", {}, "path_outside_root")
    assert not (plain / ".git").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory to another user")
async def test_a_repository_owned_by_another_user(tmp_path: Path) -> None:
    root, _ = plain_fixture(tmp_path)
    foreign = init_repo(root / "foreign")
    (foreign / "f.txt").write_text("f\n")
    run_git(foreign, "add", "f.txt")
    run_git(foreign, "commit", "-q", "-m", "f")
    for dirpath, dirnames, filenames in os.walk(foreign):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), 65534, 65534)
    os.chown(foreign, 65534, 65534)
    async with git_session(root, write=True) as s:
        for tool in ["git_status", "git_log", "git_diff", "git_branches"]:
            msg = await err(s, tool, {"repo": "foreign"}, "repository_not_owned")
            assert "safe.directory" in msg
        await ok(s, "git_status", {"repo": "repo"})
    assert shutil.which("git")
    assert stat.S_ISDIR(os.stat(foreign).st_mode)
