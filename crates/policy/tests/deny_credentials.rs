//! The credential containers added to the default deny list, and the ordinary source files the
//! measurement behind them kept readable (names from Bastion, cargo, fastapi and tokio).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use bastion_policy::{Access, DenyRules};

#[test]
fn credential_containers_are_denied() {
    let rules = DenyRules::defaults();
    for path in [
        "certs/client.p12",
        "certs/CLIENT.PFX",
        "android/release.jks",
        "app/debug.keystore",
        "keys/putty.ppk",
        "vault.kdbx",
        "infra/terraform.tfstate",
        "infra/terraform.tfstate.backup",
        "web/.htpasswd",
        ".pgpass",
    ] {
        assert!(rules.is_denied(Path::new(path), Access::Read), "{path} should be denied");
    }
}

#[test]
fn ordinary_files_with_secret_words_in_their_names_stay_readable() {
    let rules = DenyRules::defaults();
    for path in [
        "crates/hub/src/tokens.rs",
        "src/cargo/util/credential/token.rs",
        "tokio-util/src/sync/cancellation_token.rs",
        "fastapi/security/api_key.py",
        "tests/test_security_oauth2_password_bearer_optional.py",
        "src/tokenizer.rs",
        "infra/variables.tf",
        "docs/keystore-setup.md",
    ] {
        assert!(!rules.is_denied(Path::new(path), Access::Read), "{path} should stay readable");
    }
}
