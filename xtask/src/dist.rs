//! `cargo xtask dist` (the `.deb`), `cargo xtask install-check` (what CI's `install` step runs)
//! and the checks they share: man pages and completions rendered by the built binary, and the
//! shipped systemd units verified and rated by `systemd-analyze`.
//!
//! The `.deb` is built by cargo-deb from `[package.metadata.deb]` in `crates/hub/Cargo.toml`;
//! cargo-deb is installed into `.cache/tools` when it is not on `PATH`. `--test` then checks the
//! package: `dpkg-deb -c` lists what it must, and it installs, runs and purges cleanly in a
//! throw-away Debian root (the bookworm tarball `cargo xtask system` also boots) leaving no file
//! behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::interop::target_dir;
use crate::util::{apt_install, cache_dir, cargo, display, have, output_of, repo_root, run};

/// The shipped units: (file under packaging/systemd, whether it is a user unit, the highest
/// `systemd-analyze security` exposure it may have). The user unit is allowed 2.2: of its
/// exposure, 0.4 is the missing `User=` (a user manager before systemd 259 fails at
/// initgroups() with any `User=`, 216/GROUP), and 0.3 the `IPAddressDeny=` and device ACL
/// that only a privileged manager can apply (BPF); setting them would lower the number and
/// nothing else. The rest matches the system unit (see the unit's header for the budget).
const UNITS: &[(&str, bool, f64)] = &[("bastion@.service", false, 2.0), ("bastion.service", true, 2.2)];

/// The exposure limit of a shipped unit in [`UNITS`] (0 for an unknown name, so a typo fails).
pub fn unit_limit(name: &str) -> f64 {
    UNITS.iter().find(|(n, _, _)| *n == name).map_or(0.0, |(_, _, max)| *max)
}

/// Paths the `.deb` must contain (as `dpkg-deb -c` prints them).
const MUST_SHIP: &[&str] = &[
    "./usr/bin/bastion",
    "./usr/share/man/man1/bastion.1.gz",
    "./usr/share/man/man1/bastion-serve.1.gz",
    "./usr/share/man/man1/bastion-setup.1.gz",
    "./usr/share/man/man1/bastion-token-create.1.gz",
    "./usr/share/bash-completion/completions/bastion",
    "./usr/share/zsh/vendor-completions/_bastion",
    "./usr/share/fish/vendor_completions.d/bastion.fish",
    "./usr/lib/systemd/system/bastion@.service",
    "./usr/lib/systemd/user/bastion.service",
    "./usr/lib/sysusers.d/bastion.conf",
    "./usr/share/bastion/apparmor/bastion",
    "./usr/share/doc/bastion/README.md",
    "./usr/share/doc/bastion/copyright",
    "./usr/share/doc/bastion/examples/main.toml",
    "./usr/share/doc/bastion/examples/polkit/50-bastion-host.rules",
    "./usr/share/doc/bastion/runbooks/leaked-token.md",
    "./usr/share/doc/bastion/proxy/nginx.conf",
];

/// The cross target `cargo xtask dist --target` and `cargo xtask mcpb --aarch64` build for.
pub const AARCH64: &str = "aarch64-unknown-linux-gnu";

/// `cargo xtask dist [--test] [--no-build] [--target T]`: builds
/// `target/dist/bastion_VERSION_ARCH.deb` from a release build (for the host, or for `target`);
/// with `test`, checks it as described in the module documentation. A foreign package is
/// checked by its contents, lintian, and its binary run under qemu-user (`--version` and an MCP
/// session over stdio): dpkg cannot install it here.
pub fn dist(test: bool, build: bool, target: Option<&str>) -> Result<()> {
    let dist = repo_root().join("target/dist");
    let binary = if build { release_binary_for(target)? } else { existing_release_binary_for(target)? };
    render_docs(&binary, target, &dist)?;
    let cargo_deb = ensure_cargo_deb()?;
    let mut deb = Command::new(&cargo_deb);
    deb.current_dir(repo_root()).args(["deb", "-p", "bastion-hub", "--no-build", "--no-strip", "-o"]).arg(&dist);
    if let Some(t) = target {
        deb.args(["--target", t]);
    }
    let out = output_of(&mut deb).with_context(|| format!("`{}` failed", display(&deb)))?;
    let package = PathBuf::from(out.lines().last().unwrap_or_default().trim());
    ensure!(package.is_file(), "cargo-deb printed {out:?}, not the path of a package");
    eprintln!("xtask: built {}", package.display());
    if test {
        check_contents(&package)?;
        lintian(&package)?;
        if target.is_some() {
            smoke_foreign(&binary, target)?;
        } else {
            install_and_purge(&package, Debian::Bookworm)?;
            install_and_purge(&package, Debian::TrixieWithAppArmor)?;
            check_units(&binary, &dist.join("man"))?;
        }
    }
    Ok(())
}

/// CI's `package` step: one release build (as `dist` makes it, `cargo install`), then from that
/// build the `.deb` checked (`dist --test`) and the Claude Desktop bundle validated, packed and
/// started (`mcpb`). The aarch64 builds are not part of it (`cargo xtask dist --target
/// aarch64-unknown-linux-gnu --test` and `cargo xtask mcpb --aarch64`: a second fat-LTO build of
/// everything, for another architecture).
pub fn package_ci() -> Result<()> {
    let started = std::time::Instant::now();
    let binary = release_binary()?;
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or_default();
    eprintln!(
        "xtask: release build ready after {} ({:.1} MiB stripped)",
        crate::util::fmt_duration(started.elapsed()),
        size as f64 / 1048576.0
    );
    dist(true, false, None)?;
    crate::mcpb::run_mcpb(false, false)
}

/// The release `bastion`, built as `cargo install` builds it (the unit graph differs from
/// `cargo build -p`'s, so this reuses a previous install's artifacts instead of a second
/// fat-LTO build) into `target/dist/install`; `target/release/bastion`, which cargo-deb
/// packages, is the same file.
pub fn release_binary() -> Result<PathBuf> {
    release_binary_for(None)
}

/// [`release_binary`] for the host (`None`) or a cross target (`target/TARGET/release/bastion`,
/// linked by the linker `.cargo/config.toml` names for it).
pub fn release_binary_for(target: Option<&str>) -> Result<PathBuf> {
    let root = match target {
        None => repo_root().join("target/dist/install"),
        Some(t) => repo_root().join("target/dist").join(format!("install-{t}")),
    };
    let mut install = cargo();
    install
        // Offline when the dependencies are already here: no index update, so no wait on
        // the package cache lock other cargo processes on the machine may hold.
        .args(["install", "--locked", "--path", "crates/hub", "--root"])
        .arg(root)
        .args(deps_fetched().then_some("--offline"))
        .env("CARGO_TARGET_DIR", target_dir());
    if let Some(t) = target {
        install.args(["--target", t]);
    }
    run(&mut install)?;
    existing_release_binary_for(target)
}

/// `target/release/bastion` (or `target/TARGET/release/bastion`) as an earlier build left it.
pub fn existing_release_binary_for(target: Option<&str>) -> Result<PathBuf> {
    let binary = match target {
        None => target_dir().join("release/bastion"),
        Some(t) => target_dir().join(t).join("release/bastion"),
    };
    ensure!(binary.is_file(), "{} is missing: build it first (or drop --no-build)", binary.display());
    Ok(binary)
}

/// A command running `binary` built for `target`: directly for the host, under qemu-user
/// (Debian's qemu-user-static, with the cross libc of libc6-arm64-cross) for aarch64 on
/// another machine.
pub fn command_for(binary: &Path, target: Option<&str>) -> Command {
    match target {
        Some(AARCH64) if std::env::consts::ARCH != "aarch64" => {
            let mut cmd = Command::new("qemu-aarch64-static");
            cmd.args(["-L", "/usr/aarch64-linux-gnu"]).arg(binary);
            cmd
        }
        _ => Command::new(binary),
    }
}

/// The foreign binary under qemu-user: `--version`, then `bastion fs` over stdio answers
/// `initialize` and lists its tools.
fn smoke_foreign(binary: &Path, target: Option<&str>) -> Result<()> {
    if !have("qemu-aarch64-static") {
        apt_install(&["qemu-user-static"])?;
    }
    let version =
        output_of(command_for(binary, target).arg("--version")).context("the aarch64 binary's --version under qemu")?;
    ensure!(version.starts_with("bastion "), "unexpected --version output {version:?}");
    let work = tempdir("foreign")?;
    std::fs::write(work.join("hello.txt"), "hello\n")?;
    let mut fs = command_for(binary, target);
    fs.arg("fs").arg("--root").arg(&work).env("BASTION_STATE_DIR", work.join("state"));
    let names = crate::mcpb::stdio_tools(&mut fs);
    std::fs::remove_dir_all(&work).ok();
    let names = names?;
    ensure!(names.iter().any(|n| n == "read_file"), "bastion fs under qemu listed {names:?}");
    eprintln!("xtask: {version} runs under qemu-user: `bastion fs` lists {} tools over stdio", names.len());
    Ok(())
}

/// Whether `cargo fetch --offline` succeeds, i.e. every dependency is already downloaded.
fn deps_fetched() -> bool {
    crate::util::succeeds(cargo().args(["fetch", "--locked", "--offline"]))
}

/// CI's `install` step, kept to seconds: `cargo install` of the debug build into a temporary
/// root, `--version`, completions that load in bash, man pages, and the shipped units verified
/// and rated.
pub fn install_check() -> Result<()> {
    let root = tempdir("install")?;
    let mut install = cargo();
    install
        .args(["install", "--debug", "--locked", "--offline", "--path", "crates/hub", "--root"])
        .arg(&root)
        .env("CARGO_TARGET_DIR", target_dir());
    run(&mut install)?;
    let binary = root.join("bin/bastion");
    let version = output_of(Command::new(&binary).arg("--version")).context("bastion --version failed")?;
    ensure!(version.starts_with("bastion "), "unexpected --version output {version:?}");
    eprintln!("xtask: installed {version}");
    let docs = root.join("share");
    render_docs(&binary, None, &docs)?;
    check_units(&binary, &docs.join("man"))?;
    check_apparmor()?;
    std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))
}

/// Man pages (gzipped, as Debian ships them) and completions rendered by `binary` (built for
/// `target`) into `out`, then the bash completion loaded into a real bash.
fn render_docs(binary: &Path, target: Option<&str>, out: &Path) -> Result<()> {
    // man(1) looks for section 1 in MANPATH/man1.
    let man = out.join("man/man1");
    let completions = out.join("completions");
    for dir in [&man, &completions] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    run(command_for(binary, target).arg("man").arg("--out-dir").arg(&man))?;
    for (shell, file) in [("bash", "bastion"), ("zsh", "_bastion"), ("fish", "bastion.fish")] {
        let script = command_for(binary, target).args(["completions", shell]).output()?;
        ensure!(script.status.success() && !script.stdout.is_empty(), "`bastion completions {shell}` failed");
        std::fs::write(completions.join(file), &script.stdout)?;
    }
    let loaded = Command::new("bash")
        .arg("-c")
        .arg("source \"$1\" && complete -p bastion")
        .arg("bash")
        .arg(completions.join("bastion"))
        .output()
        .context("running bash")?;
    let said = String::from_utf8_lossy(&loaded.stdout);
    ensure!(
        loaded.status.success() && said.contains("-F _bastion bastion"),
        "bash did not load the completion: {said}"
    );
    run(Command::new("gzip").args(["-9", "-n", "-f"]).args(pages(&man)?))?;
    Ok(())
}

fn pages(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    ensure!(pages.iter().any(|p| p.ends_with("bastion.1")), "no bastion.1 in {}", dir.display());
    Ok(pages)
}

/// `cargo-deb` from `PATH`, else from `.cache/tools/bin`, installed there when missing.
fn ensure_cargo_deb() -> Result<PathBuf> {
    if have("cargo-deb") {
        return Ok(PathBuf::from("cargo-deb"));
    }
    let tools = cache_dir().join("tools");
    let local = tools.join("bin/cargo-deb");
    if !local.is_file() {
        run(cargo().args(["install", "cargo-deb", "--locked", "--root"]).arg(&tools))?;
    }
    Ok(local)
}

/// `dpkg-deb -c` lists every path of [`MUST_SHIP`], and nothing is owned by anyone but root.
fn check_contents(package: &Path) -> Result<()> {
    let listing = output_of(Command::new("dpkg-deb").arg("-c").arg(package)).context("dpkg-deb -c failed")?;
    let mut shipped = BTreeSet::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let (Some(owner), Some(path)) = (fields.get(1), fields.get(5)) {
            ensure!(*owner == "root/root" || *owner == "0/0", "{path} is owned by {owner}");
            shipped.insert(path.trim_end_matches('/').to_owned());
        }
    }
    let missing: Vec<&&str> = MUST_SHIP.iter().filter(|p| !shipped.contains(**p)).collect();
    ensure!(missing.is_empty(), "the package lacks {missing:?}; it has:\n{listing}");
    eprintln!("xtask: dpkg-deb -c lists all {} required paths", MUST_SHIP.len());
    Ok(())
}

/// The Debian roots the package is installed into.
#[derive(Clone, Copy, PartialEq)]
enum Debian {
    /// Debian 12, the root `cargo xtask system` boots (no AppArmor: the profile must stay out).
    Bookworm,
    /// Debian 13 with AppArmor 4.1: postinst installs the profile, which must parse there.
    TrixieWithAppArmor,
}

/// Installs the package into a fresh Debian root with `dpkg -i` under chroot, runs the binary
/// there, checks where the AppArmor profile went, purges it, and compares the file trees
/// before and after.
fn install_and_purge(package: &Path, debian: Debian) -> Result<()> {
    let root = match debian {
        Debian::Bookworm => crate::system::fresh_root("deb")?,
        Debian::TrixieWithAppArmor => crate::system::debian_root("deb", "trixie", "apparmor", "apparmor-trixie.tar")?,
    };
    let result = install_and_purge_in(package, debian, &root);
    std::fs::remove_dir_all(&root).ok();
    result
}

fn install_and_purge_in(package: &Path, debian: Debian, root: &Path) -> Result<()> {
    let before = snapshot(root)?;
    let inside = root.join("tmp/bastion.deb");
    std::fs::copy(package, &inside)?;
    let chroot = |args: &[&str]| {
        let mut cmd = Command::new("chroot");
        cmd.arg(root).args(args).env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        cmd
    };
    run(&mut chroot(&["dpkg", "-i", "/tmp/bastion.deb"]))?;
    let version = output_of(&mut chroot(&["bastion", "--version"])).context("bastion --version in the root")?;
    ensure!(version.starts_with("bastion "), "{version:?}");
    ensure!(
        output_of(&mut chroot(&["getent", "passwd", "bastion"])).is_some(),
        "postinst did not create the bastion user"
    );
    let profile = root.join("etc/apparmor.d/bastion");
    if debian == Debian::TrixieWithAppArmor {
        ensure!(profile.is_file(), "postinst did not install the AppArmor profile under AppArmor 4");
        run(&mut chroot(&["apparmor_parser", "-Q", "-K", "/etc/apparmor.d/bastion"]))?;
    } else {
        ensure!(!profile.exists(), "postinst installed the AppArmor 4 profile where AppArmor 4 is absent");
    }
    run(&mut chroot(&["dpkg", "--purge", "bastion"]))?;
    std::fs::remove_file(&inside)?;
    let after = snapshot(root)?;
    // The system user stays by Debian policy (files may still carry its uid): the account
    // databases change, and useradd/sysusers leave their `-` backups.
    let accounts = ["etc/passwd-", "etc/group-", "etc/shadow-", "etc/gshadow-", "etc/subuid-", "etc/subgid-"];
    let left: Vec<&String> =
        after.difference(&before).filter(|p| !accounts.contains(&p.as_str()) && !is_churn(p)).collect();
    ensure!(left.is_empty(), "files left behind after purge: {left:?}");
    let gone: Vec<&String> = before.difference(&after).filter(|p| !is_churn(p)).collect();
    ensure!(gone.is_empty(), "files removed that the package did not own: {gone:?}");
    let name = if debian == Debian::Bookworm { "Debian 12" } else { "Debian 13 with AppArmor 4" };
    eprintln!(
        "xtask: the package installs, runs and purges cleanly in {name} ({} files before and after)",
        before.len()
    );
    Ok(())
}

/// lintian on the package: no error. Its warnings are printed; the tags the package means to
/// carry are overridden in `packaging/deb/lintian-overrides` with the reason.
fn lintian(package: &Path) -> Result<()> {
    if !have("lintian") {
        apt_install(&["lintian"])?;
    }
    let out = Command::new("lintian")
        .args(["--fail-on", "error", "--no-tag-display-limit", "--info"])
        .arg(package)
        .output()
        .context("running lintian")?;
    let said = String::from_utf8_lossy(&out.stdout);
    eprint!("{said}");
    ensure!(out.status.success(), "lintian reports errors on {}:\n{said}", package.display());
    let warnings = said.lines().filter(|l| l.starts_with("W: ")).count();
    eprintln!("xtask: lintian: no errors, {warnings} warnings");
    Ok(())
}

/// dpkg's own database and logs, which record the install by design.
fn is_churn(path: &str) -> bool {
    ["var/lib/dpkg/", "var/log/", "var/cache/", "tmp/"].iter().any(|p| path.starts_with(p))
}

fn snapshot(root: &Path) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            if ["proc", "sys", "dev", "run"].contains(&rel.as_str()) {
                continue;
            }
            if entry.file_type()?.is_dir() {
                stack.push(path);
                out.insert(format!("{rel}/"));
            } else {
                out.insert(rel);
            }
        }
    }
    Ok(out)
}

/// `systemd-analyze verify` and `security --offline=yes` on every shipped unit (with its
/// binary path pointed at `binary` and `man_dir` on MANPATH so the references resolve), each
/// rated at its limit in [`UNITS`] or lower.
pub fn check_units(binary: &Path, man_dir: &Path) -> Result<()> {
    if !have("systemd-analyze") {
        apt_install(&["systemd"])?;
    }
    let work = tempdir("units")?;
    // A user manager (even offline) wants a runtime directory; the user unit is rated as an
    // ordinary user would run it (`User=%u` is root when root runs the analyser).
    let runtime = work.join("runtime");
    std::fs::create_dir_all(&runtime)?;
    let as_user = is_root();
    if as_user {
        run(Command::new("chown").arg("-R").arg("4242:4242").arg(&work))?;
        run(Command::new("chmod").arg("0755").arg(&work))?;
        run(Command::new("chmod").arg("0700").arg(&runtime))?;
    }
    for (name, user, max) in UNITS {
        let text = std::fs::read_to_string(repo_root().join("packaging/systemd").join(name))?;
        let local = work.join(name.replace('@', "@ci"));
        std::fs::write(&local, text.replace("/usr/bin/bastion", &binary.to_string_lossy()))?;
        let analyze = |args: &[&str]| {
            let mut cmd = if *user && as_user {
                let mut cmd = Command::new("setpriv");
                cmd.args(["--reuid=4242", "--regid=4242", "--clear-groups", "systemd-analyze", "--user"]);
                cmd
            } else if *user {
                let mut cmd = Command::new("systemd-analyze");
                cmd.arg("--user");
                cmd
            } else {
                Command::new("systemd-analyze")
            };
            cmd.args(args).arg(&local).env("XDG_RUNTIME_DIR", &runtime).env("MANPATH", man_dir).env("HOME", &work);
            cmd
        };
        let verify = analyze(&["verify"]).output()?;
        let complaints = String::from_utf8_lossy(&verify.stderr);
        ensure!(
            verify.status.success() && complaints.trim().is_empty(),
            "systemd-analyze verify {name}:\n{complaints}"
        );
        let security = analyze(&["security", "--offline=yes", "--no-pager"]).output()?;
        let report = String::from_utf8_lossy(&security.stdout);
        let exposure = report
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|l| l.split(": ").nth(1))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .with_context(|| {
                format!("no exposure level for {name} in:\n{report}{}", String::from_utf8_lossy(&security.stderr))
            })?;
        ensure!(exposure <= *max, "{name} is rated {exposure}, above {max}:\n{report}");
        eprintln!("xtask: {name}: verified, exposure {exposure} (at most {max})");
    }
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}

/// The AppArmor profile parsed by the AppArmor 4 `apparmor_parser` of a Debian 13 root (4.1;
/// Ubuntu 24.04, the release that needs the profile, has 4.0), in enforce and in complain mode
/// (`-Q -K`: parse and compile, no kernel and no cache needed), and both of its profiles grant
/// `userns`. Loading it needs a kernel with the AppArmor LSM, which a CI machine may lack.
pub fn check_apparmor() -> Result<()> {
    let root = crate::system::debian_root("apparmor", "trixie", "apparmor", "apparmor-trixie.tar")?;
    let result = (|| {
        std::fs::copy(repo_root().join("packaging/apparmor/bastion"), root.join("tmp/bastion"))?;
        let parser = |args: &[&str]| {
            let mut cmd = Command::new("chroot");
            cmd.arg(&root).arg("apparmor_parser").args(["-Q", "-K"]).args(args).arg("/tmp/bastion");
            cmd
        };
        let version =
            output_of(Command::new("chroot").arg(&root).args(["apparmor_parser", "--version"])).unwrap_or_default();
        for mode in [&[][..], &["--complain"][..]] {
            let out = parser(mode).output().context("running apparmor_parser in the Debian 13 root")?;
            let said = String::from_utf8_lossy(&out.stderr);
            // Without the LSM the parser notes that it cannot use its cache; anything else is a
            // complaint about the profile.
            let complaints: Vec<&str> = said.lines().filter(|l| !l.starts_with("Cache read/write disabled")).collect();
            ensure!(
                out.status.success() && complaints.is_empty(),
                "apparmor_parser -Q -K {mode:?} rejects the profile:\n{said}"
            );
        }
        let dump = output_of(&mut parser(&["--debug"])).context("apparmor_parser --debug")?;
        for name in ["bastion", "bastion-cargo"] {
            let at =
                dump.find(&format!("Name:\t\t{name}\n")).with_context(|| format!("no profile {name} in:\n{dump}"))?;
            let body = dump[at..].split("\nName:").next().unwrap_or_default();
            ensure!(body.contains("userns,"), "profile {name} does not grant userns:\n{body}");
        }
        eprintln!(
            "xtask: the AppArmor profile parses with {} (enforce and complain), both profiles grant userns",
            version.lines().next().unwrap_or("apparmor_parser")
        );
        Ok(())
    })();
    std::fs::remove_dir_all(&root).ok();
    result
}

fn is_root() -> bool {
    output_of(Command::new("id").arg("-u")).is_some_and(|u| u == "0")
}

/// A new empty directory under `.cache/tmp`.
pub fn tempdir(what: &str) -> Result<PathBuf> {
    let base = cache_dir().join("tmp");
    std::fs::create_dir_all(&base)?;
    for n in 0..1000u32 {
        let dir = base.join(format!("{what}-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("no free temporary directory name under {}", base.display())
}
