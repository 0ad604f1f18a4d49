//! Hostile arguments for the command rules, as data: (program, arguments) → the error code the
//! rules answer with, or `ok` when the command is allowed. Each table runs against a shipped
//! profile through the public API only ([`CommandRules::check`]), and every mismatch of a table
//! is reported at once.

use bastion_policy::commands::CommandRules;

/// (program, arguments, expected code or `ok`).
type Case = (&'static str, &'static [&'static str], &'static str);

/// The `read-only` profile: option injection (bundles, abbreviations, options after operands,
/// `--`), find's actions, programs that are shells or run programs, shell syntax in the program
/// name, and NUL bytes.
const READ_ONLY: &[Case] = &[
    ("ls", &["-la", "src"], "ok"),
    ("sort", &["-o", "x"], "argument_not_allowed"),
    ("sort", &["-ro", "x"], "argument_not_allowed"),
    ("sort", &["-rox"], "argument_not_allowed"),
    ("sort", &["--output=x"], "argument_not_allowed"),
    ("sort", &["--out=x"], "argument_not_allowed"),
    ("sort", &["--compress-prog=./x"], "argument_not_allowed"),
    ("sort", &["--compress", "./x"], "argument_not_allowed"),
    ("sort", &["a.txt", "--compress-program=./x"], "argument_not_allowed"),
    ("sort", &["--", "--compress-program=./x"], "ok"),
    ("rg", &["hello", "in.txt", "--pre", "./pre.sh"], "argument_not_allowed"),
    ("rg", &["--pre=./pre.sh", "x"], "argument_not_allowed"),
    ("rg", &["--pr", "./pre.sh", "x"], "argument_not_allowed"),
    ("rg", &["-z", "x"], "argument_not_allowed"),
    ("rg", &["-iz", "x"], "argument_not_allowed"),
    ("rg", &["--search-z", "x"], "argument_not_allowed"),
    ("rg", &["--hostname-bin=/bin/id", "x"], "argument_not_allowed"),
    ("rg", &["-L", "x"], "argument_not_allowed"),
    ("find", &[".", "-exec", "rm", "{}", ";"], "argument_not_allowed"),
    ("find", &[".", "-name", "*.rs", "-execdir", "id", ";"], "argument_not_allowed"),
    ("find", &[".", "-ok", "id", ";"], "argument_not_allowed"),
    ("find", &[".", "-delete"], "argument_not_allowed"),
    ("find", &["/", "-fprint", "x"], "argument_not_allowed"),
    ("find", &[".", "-fprintf", "x", "%p"], "argument_not_allowed"),
    ("find", &["-L", "."], "argument_not_allowed"),
    ("find", &[".", "-name", "-exec"], "ok"),
    ("find", &[".", "-type", "f", "-name", "*.rs"], "ok"),
    ("tree", &["-o", "out.txt"], "argument_not_allowed"),
    ("tree", &["-ao", "out.txt"], "argument_not_allowed"),
    ("file", &["-C"], "argument_not_allowed"),
    ("file", &["-m", "magic", "x"], "argument_not_allowed"),
    ("wc", &["--files0-from=/etc/hostname"], "argument_not_allowed"),
    ("wc", &["--files0=/etc/hostname"], "argument_not_allowed"),
    ("jq", &["--rawfile", "a", "/etc/passwd", "."], "argument_not_allowed"),
    ("jq", &["--raw", "a", "/etc/passwd", "."], "argument_not_allowed"),
    ("jq", &["-n", "env"], "ok"),
    ("jq", &["--arg", "x", "5", ".a", "f.json"], "ok"),
    ("jq", &["--", "-x", "f.json"], "argument_not_allowed"),
    ("jq", &["--", ".", "-"], "ok"),
    ("tail", &["-f", "log"], "argument_not_allowed"),
    ("tail", &["--fol", "log"], "argument_not_allowed"),
    ("head", &["-5", "log"], "ok"),
    ("date", &["-s", "2020-01-01"], "argument_not_allowed"),
    ("uniq", &["in", "out"], "argument_not_allowed"),
    ("echo", &["$(id)", "; touch x", "`id`"], "ok"),
    ("sh", &["-c", "touch x"], "command_not_allowed"),
    ("bash", &["-c", "touch x"], "command_not_allowed"),
    ("env", &["touch", "x"], "command_not_allowed"),
    ("xargs", &["touch"], "command_not_allowed"),
    ("eval", &["touch x"], "command_not_allowed"),
    ("command", &["touch", "x"], "command_not_allowed"),
    ("\\touch", &["x"], "command_not_allowed"),
    ("'touch'", &["x"], "command_not_allowed"),
    ("ls\ntouch", &["x"], "command_not_allowed"),
    ("{", &["touch", "x;", "}"], "command_not_allowed"),
    ("$(echo touch)", &["x"], "command_not_allowed"),
    ("python3", &["-c", "print(1)"], "command_not_allowed"),
    ("/bin/ls", &[], "command_not_allowed"),
    ("touch", &["x"], "command_not_allowed"),
    ("git", &["log"], "command_not_allowed"),
    ("cat", &["a\0b"], "argument_not_allowed"),
    // grep -R follows symbolic links out of the tree (-r does not).
    ("grep", &["-R", "x"], "argument_not_allowed"),
    // getopt_long: the rest of a bundle after a letter that takes a value is that value, whatever
    // letters it holds; a denied letter before it is still a flag.
    ("grep", &["-eRx", "f"], "ok"),
    ("grep", &["-ie-R", "f"], "ok"),
    ("grep", &["-fRules", "f"], "ok"),
    ("grep", &["-iR", "x"], "argument_not_allowed"),
    ("grep", &["-iRe", "x"], "argument_not_allowed"),
    ("date", &["-Iseconds"], "ok"),
];

/// The `build-test` profile: subcommands, denied flags of build tools and their abbreviations,
/// interpreters run only as their test runner.
const BUILD_TEST: &[Case] = &[
    ("cargo", &["test", "--quiet"], "ok"),
    ("cargo", &["--config", "build.rustc-wrapper='x'", "build"], "argument_not_allowed"),
    ("cargo", &["build", "--config=x"], "argument_not_allowed"),
    ("cargo", &["build", "--conf=x"], "argument_not_allowed"),
    ("cargo", &["-Zunstable-options", "build"], "argument_not_allowed"),
    ("cargo", &["install", "ripgrep"], "argument_not_allowed"),
    ("cargo", &["publish"], "argument_not_allowed"),
    ("python", &["-c", "import os"], "argument_not_allowed"),
    ("python", &["-m", "pytest", "-q"], "ok"),
    ("python", &["-m", "pytest", "--basetemp=/home"], "argument_not_allowed"),
    ("pytest", &["-p", "evil"], "argument_not_allowed"),
    ("make", &["--eval=x:"], "argument_not_allowed"),
    ("make", &["test"], "ok"),
    // The rest of a bundle after a letter that takes a value is that value (getopt_long), even when
    // it holds a denied letter: `-C/srv/Example` is a directory, not `-E`.
    ("make", &["-C/srv/Example", "test"], "ok"),
    ("make", &["-CE"], "ok"),
    ("make", &["-C", "/srv/Example"], "ok"),
    ("make", &["-f/srv/Eval.mk"], "ok"),
    ("make", &["-I/usr/include/Extra", "test"], "ok"),
    ("make", &["-sC/srv/Example"], "ok"),
    // A denied letter bundled before any letter that takes a value is still the flag.
    ("make", &["-E", "x:"], "argument_not_allowed"),
    ("make", &["-sE", "x:"], "argument_not_allowed"),
    ("make", &["-kEC/srv"], "argument_not_allowed"),
    ("npm", &["test", "-C/srv/gadget"], "ok"),
    ("npm", &["test", "-sg"], "argument_not_allowed"),
    ("npm", &["test", "-gC/srv"], "argument_not_allowed"),
    ("cargo", &["build", "-vC", "x"], "argument_not_allowed"),
    ("go", &["test", "-toolexec=/bin/x", "./..."], "argument_not_allowed"),
    ("npm", &["test"], "ok"),
    ("npm", &["exec", "x"], "argument_not_allowed"),
    ("npm", &["test", "--script-shell=/bin/x"], "argument_not_allowed"),
];

fn run_table(profile: &str, table: &[Case]) {
    let rules = CommandRules::shipped(profile).unwrap_or_else(|e| panic!("shipped profile {profile}: {e}"));
    let mut failures = Vec::new();
    for (program, args, want) in table {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let got = match rules.check(program, &args) {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        };
        if got != *want {
            failures.push(format!("{profile}: {program:?} {args:?}: want {want}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), table.len(), failures.join("\n"));
}

#[test]
fn read_only_hostile_table() {
    run_table("read-only", READ_ONLY);
}

#[test]
fn build_test_hostile_table() {
    run_table("build-test", BUILD_TEST);
}
