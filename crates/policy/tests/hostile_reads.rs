//! Hostile reads of `bastion-policy`: climbing, absolute paths, links out and in, loops, magic
//! links, deny globs on the real path (reads through in-root links included), Unicode twins and a
//! FIFO; then the other read entry points (`open_dir`, `stat`, `open_walked_file`,
//! `confirm_walked`, `target`'s root argument).
//!
//! Every case runs under both resolvers (`ResolveMode::Auto`, i.e. `openat2`, and
//! `ResolveMode::Walk`, the `O_NOFOLLOW` fallback), each in its own temporary directory
//! ([`common::Fx`]); after every table the fixture checks that nothing outside the root changed
//! and no content returned ever contained the sentinel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use bastion_policy::{CreateMode, DenyRules, ErrorCode, RelPath};

use common::*;

// ---------------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum ReadWant {
    /// Opens, the real root-relative path is `rel`, the content is exactly this.
    Ok(&'static str, Vec<u8>),
    Err(ErrorCode),
}

fn read_cases(fx: &Fx) -> Vec<(String, ReadWant)> {
    use ErrorCode::*;
    use ReadWant::Err as E;
    let ok = |rel: &'static str, content: &[u8]| ReadWant::Ok(rel, content.to_vec());
    let root = fx.root.to_str().unwrap().to_string();
    let s = |x: &str| x.to_string();
    vec![
        // Climbing and absolute paths.
        (s("../outside/secret.txt"), E(PathOutsideRoot)),
        (s("../outside/plain.txt"), E(PathOutsideRoot)),
        (s("sub/../../outside/secret.txt"), E(PathOutsideRoot)),
        (s("sub/../../outside/plain.txt"), E(PathOutsideRoot)),
        (s(".."), E(PathOutsideRoot)),
        (s("./../outside/plain.txt"), E(PathOutsideRoot)),
        (s(".git/../../outside/plain.txt"), E(PathOutsideRoot)),
        (s("/etc/hostname"), E(PathOutsideRoot)),
        (s("//etc/hostname"), E(PathOutsideRoot)),
        (s("/proc/self/root/etc/hostname"), E(PathOutsideRoot)),
        (s("/proc/self/cwd/Cargo.toml"), E(PathOutsideRoot)),
        (fx.abs("outside/secret.txt"), E(PathOutsideRoot)),
        (fx.abs("outside/plain.txt"), E(PathOutsideRoot)),
        (format!("{root}/../outside/plain.txt"), E(PathOutsideRoot)),
        (format!("{root}/sub/../../outside/plain.txt"), E(PathOutsideRoot)),
        // Prefix confusion: `root-evil` starts with the string `root`.
        (s("../root-evil/s.txt"), E(PathOutsideRoot)),
        (s("sub/../../root-evil/s.txt"), E(PathOutsideRoot)),
        (fx.abs("root-evil/s.txt"), E(PathOutsideRoot)),
        (format!("{root}-evil/s.txt"), E(PathOutsideRoot)),
        // Symlinks that lead out.
        (s("abs_esc"), E(PathOutsideRoot)),
        (s("rel_esc"), E(PathOutsideRoot)),
        (s("rel_esc_plain"), E(PathOutsideRoot)),
        (s("outdir/plain.txt"), E(PathOutsideRoot)),
        (s("outdir/own.txt"), E(PathOutsideRoot)),
        (s("sub/../rel_esc_plain"), E(PathOutsideRoot)),
        (format!("{root}/rel_esc_plain"), E(PathOutsideRoot)),
        (s("rootlink/etc/hostname"), E(PathOutsideRoot)),
        (s("rootlink"), E(PathOutsideRoot)),
        (s("proclink/etc/hostname"), E(PathOutsideRoot)),
        (s("proclink"), E(PathOutsideRoot)),
        (s("dangling"), E(PathOutsideRoot)),
        (s("loop1"), E(PathOutsideRoot)),
        (s("loop2/x"), E(PathOutsideRoot)),
        // Deny globs, matched on the real path (symlinks inside the root do not launder).
        (s(".env"), E(DeniedByGlob)),
        (s(".ENV"), E(DeniedByGlob)),
        (s("./.env"), E(DeniedByGlob)),
        (s("sub/../.env"), E(DeniedByGlob)),
        (s(".env/"), E(DeniedByGlob)),
        (format!("{root}/.env"), E(DeniedByGlob)),
        (s("notes.txt"), E(DeniedByGlob)),
        (format!("{root}/notes.txt"), E(DeniedByGlob)),
        (s("chain"), E(DeniedByGlob)),
        (s("sub/envlink"), E(DeniedByGlob)),
        // A denied name is refused before it is looked up (no existence oracle).
        (s("sub/.env"), E(DeniedByGlob)),
        (s(".ssh/id_rsa"), E(DeniedByGlob)),
        (s("~/.ssh/id_rsa"), E(DeniedByGlob)),
        // `.git` is only write-denied: reading through the `cfgdir` link reports the real path.
        (s("cfgdir/config"), ok(".git/config", GIT_CONFIG)),
        (s(".git/config"), ok(".git/config", GIT_CONFIG)),
        // Not regular files.
        (s("sub"), E(NotARegularFile)),
        (s(""), E(NotARegularFile)),
        (s("."), E(NotARegularFile)),
        (s("./"), E(NotARegularFile)),
        (s("sub/.."), E(NotARegularFile)),
        (root.clone(), E(NotARegularFile)),
        (s(".git"), E(NotARegularFile)),
        (s("cfgdir"), E(NotARegularFile)),
        // Malformed.
        (s("a.txt\0/../x"), E(InvalidPath)),
        (s("\0"), E(InvalidPath)),
        (format!("{root}/a.txt\0"), E(InvalidPath)),
        ("a/".repeat(2500), E(InvalidPath)),
        (vec!["y".repeat(255); 16].join("/") + "/z", E(InvalidPath)),
        ("x".repeat(256), E(InvalidPath)),
        (format!("sub/{}", "x".repeat(256)), E(InvalidPath)),
        (format!("{root}/{}", "x".repeat(256)), E(InvalidPath)),
        // Just under the limits: well-formed, simply absent.
        ("x".repeat(255), E(NotFound)),
        (vec!["y".repeat(255); 16].join("/"), E(NotFound)),
        // Other not-a-file / not-found shapes.
        (s("a.txt/x"), E(NotADirectory)),
        (s("inner/x"), E(NotADirectory)),
        (s("nonexistent"), E(NotFound)),
        (s("A.TXT"), E(NotFound)),
        // Encodings are names, never decoded. (Names containing `secret` hit the `*secret*` deny
        // glob first, which is also a refusal that reveals nothing.)
        (s("..%2f..%2foutside%2fsecret.txt"), E(DeniedByGlob)),
        (s("%2e%2e/secret"), E(DeniedByGlob)),
        (s("..%2f..%2foutside%2fplain.txt"), E(NotFound)),
        (s("%2e%2e/plain.txt"), E(NotFound)),
        (s("%2e%2e%2f%2e%2e%2foutside%2fplain.txt"), E(NotFound)),
        (s("..%252f..%252foutside%252fplain.txt"), E(NotFound)),
        (s("..%c0%af..%c0%afoutside%c0%afplain.txt"), E(NotFound)),
        (s("..\\..\\outside"), E(NotFound)),
        (s("..\\..\\outside\\plain.txt"), E(NotFound)),
        (s("\u{ff0e}\u{ff0e}/\u{ff0e}\u{ff0e}/outside/plain.txt"), E(NotFound)),
        (s("..\u{2215}..\u{2215}outside\u{2215}plain.txt"), E(NotFound)),
        (s("file:///etc/hostname"), E(NotFound)),
        (s("~/plain.txt"), E(NotFound)),
        (s("$HOME/plain.txt"), E(NotFound)),
        (s("..."), E(NotFound)),
        (s(".../outside/plain.txt"), E(NotFound)),
        (s("a.txt\n"), E(NotFound)),
        (s(" a.txt"), E(NotFound)),
        (s("a.txt\u{200b}"), E(NotFound)),
        // Allowed reads.
        (s("a.txt"), ok("a.txt", A_TXT)),
        (s("./a.txt"), ok("a.txt", A_TXT)),
        (s("a.txt/"), ok("a.txt", A_TXT)),
        (s("sub/b.txt"), ok("sub/b.txt", B_TXT)),
        (s("sub//b.txt"), ok("sub/b.txt", B_TXT)),
        (s("sub/./b.txt"), ok("sub/b.txt", B_TXT)),
        (s("sub/../a.txt"), ok("a.txt", A_TXT)),
        (s("inner"), ok("a.txt", A_TXT)),
        (format!("{root}/a.txt"), ok("a.txt", A_TXT)),
        (format!("{root}//sub/./b.txt"), ok("sub/b.txt", B_TXT)),
        (format!("{root}/sub/../a.txt"), ok("a.txt", A_TXT)),
        (format!("{root}/inner"), ok("a.txt", A_TXT)),
        (s(NFC), ok(NFC, b"nfc")),
        (s(NFD), ok(NFD, b"nfd")),
        (format!("{root}/{NFD}"), ok(NFD, b"nfd")),
        // Reads of a hard link are allowed (only writes refuse `st_nlink > 1`, see §1.3); its
        // content is the outside file's, which the fixture keeps sentinel-free on purpose.
        (s("hl"), ok("hl", OWN_TXT)),
    ]
}

#[test]
fn reads_hostile_table() {
    for mode in MODES {
        let fx = Fx::new();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let mut failures = Vec::new();
        let cases = read_cases(&fx);
        assert!(cases.len() > 90);
        for (input, want) in &cases {
            let got = read(&roots, &deny, input);
            let pass = match (&got, want) {
                (Ok((rel, content)), ReadWant::Ok(wrel, wcontent)) => rel == wrel && content == wcontent,
                (Err(code), ReadWant::Err(wcode)) => code == wcode,
                _ => false,
            };
            if !pass {
                let got = got.map(|(rel, c)| (rel, String::from_utf8_lossy(&c).into_owned()));
                failures.push(format!("{}: got {got:?}, want {want:?}", show(input)));
            }
        }
        report(&format!("reads {mode:?}"), failures);
        fx.assert_outside_intact(&format!("reads {mode:?}"));
    }
}

#[test]
fn fifo_is_refused_without_blocking() {
    for mode in MODES {
        let fx = Fx::new();
        let roots = fx.roots(mode);
        let r2 = roots.clone();
        let got = within("open_file(fifo)", move || read(&r2, &DenyRules::defaults(), "fifo"));
        assert_eq!(got, Err(ErrorCode::NotARegularFile), "{mode:?}");
        let abs = fx.in_root("fifo").to_str().unwrap().to_string();
        let r3 = roots.clone();
        let got = within("open_file(/abs/fifo)", move || read(&r3, &DenyRules::defaults(), &abs));
        assert_eq!(got, Err(ErrorCode::NotARegularFile), "{mode:?}");
        // Writing over a FIFO is refused before anything opens it.
        let r4 = roots.clone();
        let got = within("write(fifo)", move || {
            write(&r4, &DenyRules::defaults(), "fifo", b"x", CreateMode::CreateOrReplace).map(|_| ())
        });
        assert_eq!(got, Err(ErrorCode::NotARegularFile), "{mode:?}");
        let r5 = roots.clone();
        let got = within("open_dir(fifo)", move || {
            let t = r5.target("fifo", None).unwrap();
            r5.open_dir(&t, &DenyRules::defaults()).map(|_| ()).map_err(|e| e.code)
        });
        assert_eq!(got, Err(ErrorCode::NotADirectory), "{mode:?}");
        assert!(fs::symlink_metadata(fx.in_root("fifo")).unwrap().file_type().is_fifo());
        fx.assert_outside_intact(&format!("fifo {mode:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Other entry points: open_dir, stat, open_walked_file, confirm_walked, target's root argument
// ---------------------------------------------------------------------------------------------

#[test]
fn other_entry_points() {
    use ErrorCode::*;
    for mode in MODES {
        let fx = Fx::new();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let open_dir = |p: &str| -> Result<String, ErrorCode> {
            let t = roots.target(p, None).map_err(|e| e.code)?;
            roots.open_dir(&t, &deny).map(|d| d.rel.display()).map_err(|e| e.code)
        };
        let mut failures = Vec::new();
        let dir_cases: Vec<(&str, Result<&str, ErrorCode>)> = vec![
            ("rootlink", Err(PathOutsideRoot)),
            ("proclink", Err(PathOutsideRoot)),
            ("outdir", Err(PathOutsideRoot)),
            ("..", Err(PathOutsideRoot)),
            ("sub/../..", Err(PathOutsideRoot)),
            ("/", Err(PathOutsideRoot)),
            ("/proc/self/root", Err(PathOutsideRoot)),
            (".ssh", Err(DeniedByGlob)),
            ("a.txt", Err(NotADirectory)),
            ("inner", Err(NotADirectory)),
            ("loop1", Err(PathOutsideRoot)),
            ("cfgdir", Ok(".git")),
            ("sub", Ok("sub")),
            ("", Ok(".")),
        ];
        for (input, want) in dir_cases {
            let got = open_dir(input);
            if !same(&got, &want) {
                failures.push(format!("open_dir {input}: got {got:?}, want {want:?}"));
            }
        }
        let stat = |p: &str| -> Result<String, ErrorCode> {
            let t = roots.target(p, None).map_err(|e| e.code)?;
            roots.stat(&t, &deny).map(|(_, _, rel)| rel.display()).map_err(|e| e.code)
        };
        let stat_cases: Vec<(&str, Result<&str, ErrorCode>)> = vec![
            ("abs_esc", Err(PathOutsideRoot)),
            ("rel_esc", Err(PathOutsideRoot)),
            ("dangling", Err(PathOutsideRoot)),
            ("rootlink/etc/hostname", Err(PathOutsideRoot)),
            ("notes.txt", Err(DeniedByGlob)),
            ("chain", Err(DeniedByGlob)),
            (".env", Err(DeniedByGlob)),
            ("../outside/plain.txt", Err(PathOutsideRoot)),
            ("inner", Ok("a.txt")),
            ("cfgdir/config", Ok(".git/config")),
            ("fifo", Ok("fifo")),
        ];
        for (input, want) in stat_cases {
            let got = stat(input);
            if !same(&got, &want) {
                failures.push(format!("stat {input}: got {got:?}, want {want:?}"));
            }
        }
        // Walked paths refuse every symlink.
        let root = roots.iter().next().unwrap().clone();
        let walked = |p: &str| -> Result<String, ErrorCode> {
            let rel = RelPath::parse(Path::new(p)).map_err(|e| e.code)?;
            roots.open_walked_file(&root, &rel, &deny).map(|f| f.rel.display()).map_err(|e| e.code)
        };
        let walked_cases: Vec<(&str, Result<&str, ErrorCode>)> = vec![
            ("notes.txt", Err(PathOutsideRoot)),
            ("inner", Err(PathOutsideRoot)),
            ("rel_esc_plain", Err(PathOutsideRoot)),
            ("cfgdir/config", Err(PathOutsideRoot)),
            ("rootlink/etc/hostname", Err(PathOutsideRoot)),
            (".env", Err(DeniedByGlob)),
            ("fifo", Err(NotARegularFile)),
            ("../outside/plain.txt", Err(PathOutsideRoot)),
            ("a.txt", Ok("a.txt")),
            (".git/config", Ok(".git/config")),
        ];
        for (input, want) in walked_cases {
            let got = walked(input);
            if !same(&got, &want) {
                failures.push(format!("open_walked_file {input}: got {got:?}, want {want:?}"));
            }
        }
        // A trailing link is reported as itself (in the root); a link on the way is refused.
        for (p, want) in [
            ("a.txt", true),
            ("sub/b.txt", true),
            ("inner", true),
            ("abs_esc", true),
            ("cfgdir/config", false),
            ("rootlink/etc", false),
            ("outdir/plain.txt", false),
        ] {
            let rel = RelPath::parse(Path::new(p)).unwrap();
            if roots.confirm_walked(&root, &rel) != want {
                failures.push(format!("confirm_walked {p}: want {want}"));
            }
        }
        // The root argument: names only, never a path that widens.
        let name = root.name().to_string();
        let target_code = |p: &str, r: Option<&str>| roots.target(p, r).map(|t| t.rel.display()).map_err(|e| e.code);
        let root_arg_cases: Vec<(String, Option<String>, Result<&str, ErrorCode>)> = vec![
            ("a.txt".into(), Some(name.clone()), Ok("a.txt")),
            ("a.txt".into(), Some(fx.root.to_str().unwrap().into()), Ok("a.txt")),
            ("plain.txt".into(), Some(fx.abs("outside")), Err(InvalidArgument)),
            ("plain.txt".into(), Some("outside".into()), Err(InvalidArgument)),
            ("plain.txt".into(), Some("../outside".into()), Err(InvalidArgument)),
            ("x".into(), Some("".into()), Err(InvalidArgument)),
            (fx.abs("outside/plain.txt"), Some(name.clone()), Err(PathOutsideRoot)),
            ("../outside/plain.txt".into(), Some(name.clone()), Err(PathOutsideRoot)),
        ];
        for (p, r, want) in root_arg_cases {
            let got = target_code(&p, r.as_deref());
            if !same(&got, &want) {
                failures.push(format!("target({p}, {r:?}): got {got:?}, want {want:?}"));
            }
        }
        report(&format!("other entry points {mode:?}"), failures);
        fx.assert_outside_intact(&format!("other entry points {mode:?}"));
    }
}
