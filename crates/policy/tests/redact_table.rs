//! Secret redaction, as a table: every built-in kind with realistic samples that must be
//! redacted, and near misses from ordinary code and prose that must come back unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::time::Instant;

use bastion_policy::ErrorCode;
use bastion_policy::redact::{ExtraPattern, RedactConfig, Redactor};

fn engine() -> Redactor {
    Redactor::new(&RedactConfig::default()).unwrap()
}

/// (input, expected output). Samples are built from pieces so this file does not itself look
/// like a leaked credential to a scanner.
fn positives() -> Vec<(String, String)> {
    let gh = format!("ghp_{}", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8");
    let pat = format!("github_pat_{}", "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP");
    let openai = format!("sk-{}", "proj-Zq3xY8wV7uT6sR5qP4oN3mL2kJ1iH0gF9eD8cB7aZ6yX");
    let anthropic = format!("sk-ant-{}", "api03-AbCdEf0123456789GhIjKl-mnopQRSTuvwx_yz98");
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    let key_block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MaDzJk6K\nR3fsmN1tVHpUMmgN0IqYN8F1aKlOgOA8ll8oJHwRTZdC3Q==\n-----END RSA PRIVATE KEY-----\n";
    vec![
        (format!("token = {gh}\n"), "token = [REDACTED:github_token]\n".into()),
        (format!("git clone https://{gh}@github.com/o/r\n"), "git clone https://[REDACTED:github_token]@github.com/o/r\n".into()),
        (format!("x {} y", gh.replace("ghp_", "gho_")), "x [REDACTED:github_token] y".into()),
        (format!("x {} y", gh.replace("ghp_", "ghs_")), "x [REDACTED:github_token] y".into()),
        (format!("x {} y", gh.replace("ghp_", "ghu_")), "x [REDACTED:github_token] y".into()),
        (format!("x {} y", gh.replace("ghp_", "ghr_")), "x [REDACTED:github_token] y".into()),
        (format!("GH={pat}"), "GH=[REDACTED:github_token]".into()),
        (format!("CI_TOKEN {}", "glpat-xYz0123456789AbCdEfGh"), "CI_TOKEN [REDACTED:gitlab_token]".into()),
        (format!("slack: {}\n", "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"), "slack: [REDACTED:slack_token]\n".into()),
        (format!("{}-12345-abcdef", "xoxp"), "[REDACTED:slack_token]".into()),
        (
            format!("hook {}/T0123ABCD/B0456EFGH/abcdefghijklmnopqrstuvwx\n", "https://hooks.slack.com/services"),
            "hook [REDACTED:slack_webhook]\n".into(),
        ),
        (format!("OPENAI_API_KEY={openai}\n"), "OPENAI_API_KEY=[REDACTED:openai_api_key]\n".into()),
        (format!("client = OpenAI(api_key=\"{}\")", openai.replace("proj-", "")), "client = OpenAI(api_key=\"[REDACTED:openai_api_key]\")".into()),
        (format!("key: {anthropic}\n"), "key: [REDACTED:anthropic_api_key]\n".into()),
        (format!("stripe.api_key = \"{}\"", "sk_live_51HcX0aBcDeFgHiJkLmNoPqRs"), "stripe.api_key = \"[REDACTED:stripe_key]\"".into()),
        (format!("{} done", "rk_test_4eC39HqLyjWDarjtT1zdp7dc"), "[REDACTED:stripe_key] done".into()),
        (format!("aws_access_key_id = {}\n", "AKIAIOSFODNN7EXAMPLE"), "aws_access_key_id = [REDACTED:aws_access_key_id]\n".into()),
        (format!("\"AccessKeyId\": \"{}\",", "ASIAY34FZKBOKMUTVV7A"), "\"AccessKeyId\": \"[REDACTED:aws_access_key_id]\",".into()),
        (
            format!("aws_secret_access_key = {}\n", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            "aws_secret_access_key = [REDACTED:aws_secret_access_key]\n".into(),
        ),
        (
            format!("AWS_SECRET_ACCESS_KEY: \"{}\"\n", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            "AWS_SECRET_ACCESS_KEY: \"[REDACTED:aws_secret_access_key]\"\n".into(),
        ),
        (format!("maps key {}", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"), "maps key [REDACTED:gcp_api_key]".into()),
        (
            format!(
                "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={};EndpointSuffix=core.windows.net",
                "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
            ),
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=[REDACTED:azure_connection_string];EndpointSuffix=core.windows.net".into(),
        ),
        (format!("Authorization: Bearer {jwt}\n"), "Authorization: Bearer [REDACTED:jwt]\n".into()),
        (
            format!("before\n{key_block}after\n"),
            // The block keeps its line count, so later line numbers stay the file's.
            "before\n[REDACTED:private_key]\n\n\n\nafter\n".into(),
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
                .into(),
            // A block cut before its END line (a read window) is still redacted.
            "[REDACTED:private_key]\n\n".into(),
        ),
        (
            "{\"type\": \"service_account\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\\n\", \"client_email\": \"a@b.iam.gserviceaccount.com\"}".into(),
            "{\"type\": \"service_account\", \"private_key\": \"[REDACTED:private_key]\\n\", \"client_email\": \"a@b.iam.gserviceaccount.com\"}".into(),
        ),
        ("DATABASE_URL=postgres://app:s3cretPw@db:5432/app\n".into(), "DATABASE_URL=postgres://app:[REDACTED:url_credentials]@db:5432/app\n".into()),
        // env-like files
        ("DB_PASSWORD=hunter2\n".into(), "DB_PASSWORD=[REDACTED:secret_assignment]\n".into()),
        ("export API_KEY='a8f5f167f44f4964e6c998dee827110c'\n".into(), "export API_KEY='[REDACTED:secret_assignment]'\n".into()),
        ("client_secret = \"Zx81-pq_Lm2\"  # rotate monthly\n".into(), "client_secret = \"[REDACTED:secret_assignment]\"  # rotate monthly\n".into()),
        ("[db]\npassword = correct-horse-battery\n".into(), "[db]\npassword = [REDACTED:secret_assignment]\n".into()),
        ("spring.datasource.password=Pa55word!\n".into(), "spring.datasource.password=[REDACTED:secret_assignment]\n".into()),
        ("database:\n  password: s3cr3t-Value\n".into(), "database:\n  password: [REDACTED:secret_assignment]\n".into()),
        ("env:\n  - SECRET_TOKEN=abc123def\n".into(), "env:\n  - SECRET_TOKEN=[REDACTED:secret_assignment]\n".into()),
        ("{\"user\": \"app\", \"password\": \"Tr0ub4dor&3\"}".into(), "{\"user\": \"app\", \"password\": \"[REDACTED:secret_assignment]\"}".into()),
        ("DB_PASSWORD=hunter2\r\n".into(), "DB_PASSWORD=[REDACTED:secret_assignment]\r\n".into()),
    ]
}

/// Text that must come back unchanged (and borrowed).
fn negatives() -> Vec<&'static str> {
    vec![
        "fn main() { println!(\"hello\"); }\n",
        // hashes, UUIDs, base64 that is not a credential
        "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n",
        "commit 3f2a1b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a\n",
        "id = \"123e4567-e89b-12d3-a456-426614174000\"\n",
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\n",
        "integrity sha512-dGhpcyBpcyBub3QgYSBzZWNyZXQsIGp1c3QgYSBsb25nIGJhc2U2NCBibG9i\n",
        // the word in prose and code
        "Enter your password to continue. The password must be 12 characters.\n",
        "Forgot password? Reset it from the settings page.\n",
        "let password = read_password()?;\n",
        "    password: String,\n",
        "    token: Option<String>,\n",
        "  password: string;\n",
        "def login(user, password=None):\n",
        "password = os.environ[\"DB_PASSWORD\"]\n",
        "SECRET_KEY = settings.SECRET_KEY\n",
        "token = request.headers.get(\"Authorization\")\n",
        "api_key: ${{ secrets.API_KEY }}\n",
        "DB_PASSWORD=${DB_PASSWORD}\n",
        "password: <your-password>\n",
        "PASSWORD=changeme\n",
        "token: xxxxxxxx\n",
        "max_tokens: 4096\n",
        "token_type: bearer\n",
        "tokenizer = bert-base-uncased\n",
        "DATABASE_PASSWORD_FILE=/run/secrets/db\n",
        "{\"password\": \"Mot de passe\", \"token\": \"Token\"}\n",
        "password = \"\"\n",
        // `sk-` inside words and short ids
        "task-queue-worker-replica-sets-are-here\n",
        "mount /dev/disk-by-uuid-0123456789abcdefghij\n",
        "risk-assessment-framework-2024-final-v2\n",
        "sk-short\n",
        "an sk-learn-compatible-estimator-interface\n",
        // prefixes that are not tokens
        "ghp_short and github_pat_ alone\n",
        "AKIA is the prefix of an AWS access key id\n",
        "eyJ is what base64 JSON starts with: eyJhbGciOiJIUzI1NiJ9\n",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n",
        "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n-----END CERTIFICATE-----\n",
        "https://user@example.com/path and https://example.com:8443/x\n",
        // markers themselves are left alone
        "GITHUB_TOKEN=[REDACTED:github_token]\n",
    ]
}

#[test]
fn every_kind_is_redacted_and_named() {
    let r = engine();
    let mut failures = Vec::new();
    for (input, expected) in positives() {
        let out = r.redact(&input);
        if out.text != expected {
            failures.push(format!("input:    {input:?}\nexpected: {expected:?}\ngot:      {:?}", out.text));
        } else if out.count == 0 {
            failures.push(format!("{input:?}: redacted but counted 0"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} positives wrong:\n{}",
        failures.len(),
        positives().len(),
        failures.join("\n\n")
    );
}

#[test]
fn near_misses_are_left_alone_and_borrowed() {
    let r = engine();
    let mut failures = Vec::new();
    for input in negatives() {
        let out = r.redact(input);
        if out.count != 0 || !matches!(out.text, Cow::Borrowed(_)) {
            failures.push(format!("{input:?} became {:?}", out.text));
        }
    }
    assert!(failures.is_empty(), "{} near misses redacted:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_builtin_kind_has_a_positive() {
    let all: String = positives().into_iter().map(|(_, e)| e).collect();
    for kind in bastion_policy::redact::BUILTIN_KINDS {
        assert!(all.contains(&format!("[REDACTED:{kind}]")), "no positive sample for {kind}");
    }
}

#[test]
fn counts_each_secret() {
    let r = engine();
    let text = "A=AKIAIOSFODNN7EXAMPLE\nB=AKIAIOSFODNN7EXAMPLF\nPASSWORD=hunter22\n";
    let out = r.redact(text);
    assert_eq!(out.count, 3, "{}", out.text);
}

#[test]
fn configuration_turns_kinds_off_adds_patterns_and_disables() {
    let off = Redactor::new(&RedactConfig { enabled: false, ..Default::default() }).unwrap();
    assert!(!off.enabled());
    assert_eq!(off.redact("DB_PASSWORD=hunter2\n").count, 0);

    let no_jwt = Redactor::new(&RedactConfig { disabled: vec!["jwt".into()], ..Default::default() }).unwrap();
    assert_eq!(no_jwt.redact("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefgh").count, 0);
    assert_eq!(no_jwt.redact("DB_PASSWORD=hunter2\n").count, 1);

    let extra = Redactor::new(&RedactConfig {
        extra: vec![ExtraPattern { kind: "acme_token".into(), pattern: r"acme_[A-Za-z0-9]{8}".into() }],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(extra.redact("use acme_Ab12Cd34 here").text, "use [REDACTED:acme_token] here");

    for bad in [
        RedactConfig { disabled: vec!["jwts".into()], ..Default::default() },
        RedactConfig {
            extra: vec![ExtraPattern { kind: "Bad Kind".into(), pattern: "x".into() }],
            ..Default::default()
        },
        RedactConfig { extra: vec![ExtraPattern { kind: "k".into(), pattern: "(".into() }], ..Default::default() },
        RedactConfig { extra: vec![ExtraPattern { kind: "k".into(), pattern: "a*".into() }], ..Default::default() },
    ] {
        assert_eq!(Redactor::new(&bad).unwrap_err().code, ErrorCode::InvalidConfig, "{bad:?}");
    }
}

#[test]
fn policy_toml_has_a_redact_table() {
    let c = bastion_policy::PolicyConfig::from_toml(
        "[redact]\nenabled = true\ndisabled = [\"jwt\"]\n[[redact.extra]]\nkind = \"acme\"\npattern = \"acme_[0-9]{4}\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.redact.disabled, vec!["jwt".to_string()]);
    assert_eq!(c.redact.extra.len(), 1);
    assert!(bastion_policy::PolicyConfig::default().redact.enabled);
    let err = bastion_policy::PolicyConfig::from_toml("[redact]\nenable = false\n", "t").unwrap_err();
    assert!(err.message.contains("enable"), "{}", err.message);
}

#[test]
fn writing_a_marker_over_a_secret_is_refused() {
    let r = engine();
    let old = "HOST=db\nDB_PASSWORD=hunter2\n";
    // The model read the file redacted and writes it back whole.
    let echoed = r.redact(old).into_owned();
    let err = r.check_no_markers_written(old, &echoed, ".env.example").unwrap_err();
    assert_eq!(err.code, ErrorCode::RedactedContent);
    assert!(err.message.contains("[REDACTED:secret_assignment]"), "{}", err.message);
    // Editing around the secret is fine.
    r.check_no_markers_written(old, "HOST=db2\nDB_PASSWORD=hunter2\n", ".env.example").unwrap();
    // A file without secrets may receive markers (documentation), and a file that already holds
    // a marker literally may keep it.
    r.check_no_markers_written("docs\n", "see [REDACTED:github_token]\n", "README.md").unwrap();
    r.check_no_markers_written(
        "x [REDACTED:jwt]\nDB_PASSWORD=hunter2\n",
        "y [REDACTED:jwt]\nDB_PASSWORD=hunter2\n",
        "a",
    )
    .unwrap();
    // Off: nothing is refused.
    let off = Redactor::new(&RedactConfig { enabled: false, ..Default::default() }).unwrap();
    off.check_no_markers_written(old, &echoed, ".env.example").unwrap();
}

/// Not an assertion on time (machines differ): prints what the redaction pass costs on a
/// 1 KiB source file without a secret, the hot path of every read, next to copying the text.
#[test]
fn hot_path_cost_on_a_file_without_secrets() {
    let r = engine();
    let line = "    let value = compute(&input, 42).map_err(|e| Error::new(code, e.to_string()))?;\n";
    let text: String = line.repeat(1024 / line.len() + 1);
    let text = &text[..1024];
    let n = 2000;
    for _ in 0..50 {
        std::hint::black_box(r.redact(std::hint::black_box(text)));
    }
    let t = Instant::now();
    for _ in 0..n {
        let out = r.redact(std::hint::black_box(text));
        assert_eq!(out.count, 0);
    }
    let per = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(std::hint::black_box(text).to_string());
    }
    let copy = t.elapsed() / n;
    let with = format!("{text}DB_PASSWORD=hunter2\n");
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(r.redact(std::hint::black_box(&with)));
    }
    let hit = t.elapsed() / n;
    // Source that talks about secrets (this crate's audit module: `token`, `secret`, `password`
    // on 22 lines, two of them test assignments that are redacted) makes the triggers fire.
    let wordy = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/audit.rs")).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(r.redact(std::hint::black_box(&wordy)));
    }
    let words = t.elapsed() / n;
    let found = r.redact(&wordy).count;
    println!(
        "redact 1 KiB without a secret: {per:?} per call (a String copy: {copy:?}); with one secret: {hit:?}; \
         {} KiB of source naming secrets ({found} redacted): {words:?}",
        wordy.len() / 1024
    );
}
