//! RustyVault (`rvault`, a Vault-API-compatible server) as the tests' Vault: installed with
//! `cargo install` into a cache outside the repo, started on loopback with a temp data dir,
//! then initialised (one key share), unsealed and given a KV v1 engine at `secret/`.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::http::request;
use super::{Details, Files, Pairs, detail, process, run_with_env};
use crate::cmd;

/// Where it answers (a fixed port off Vault's 8200, so a developer's own Vault is left alone).
pub(super) const ADDR: &str = "127.0.0.1:18200";
/// The crate `cargo install` builds `rvault` from.
const CRATE: &str = "rusty_vault";
/// The binary's name.
const BINARY: &str = "rvault";
/// The file under the data dir holding the unseal key and root token (mode 0600).
const INIT_FILE: &str = "init.json";

/// `rvault` in the cached cargo root ([`cmd::cargo_root`]), else on `PATH`.
pub(super) fn binary() -> Option<PathBuf> {
    cmd::find_tool(BINARY)
}

pub(super) fn installed() -> bool {
    binary().is_some()
}

/// Installs `libssl-dev` and `pkg-config` when OpenSSL's headers are missing: rusty_vault links
/// OpenSSL, and so does the workspace itself (consulrs turns on reqwest's OpenSSL backend).
pub(crate) fn ensure_openssl_headers() -> Result<(), String> {
    let has_openssl = Command::new("pkg-config").args(["--exists", "openssl"]).status().is_ok_and(|s| s.success());
    if !has_openssl {
        println!("services: installing libssl-dev and pkg-config (OpenSSL headers for the build)");
        run_with_env("apt-get", &["update"], &[])?;
        run_with_env(
            "apt-get",
            &["install", "-y", "libssl-dev", "pkg-config"],
            &[("DEBIAN_FRONTEND", "noninteractive")],
        )?;
    }
    Ok(())
}

/// `cargo install rusty_vault --locked` into [`cmd::cargo_root`] (its OpenSSL build needs the
/// system's headers, installed first when missing).
pub(super) fn install() -> Result<(), String> {
    ensure_openssl_headers()?;
    let root = cmd::cargo_root();
    let root_text = root.to_string_lossy().into_owned();
    println!("services: `cargo install {CRATE} --locked --root {root_text}` (5-15 min on 2 cores; progress follows)");
    let started = Instant::now();
    run_with_env(&cmd::cargo(), &["install", CRATE, "--locked", "--root", &root_text], &[])?;
    println!("services: installed {BINARY} in {:.0?}", started.elapsed());
    Ok(())
}

/// The server configuration: file storage in `dir`, plain TCP on [`ADDR`].
pub(super) fn config_hcl(dir: &Path) -> String {
    let dir = dir.to_string_lossy();
    format!(
        "storage \"file\" {{\n  path = \"{dir}/data\"\n}}\n\nlistener \"tcp\" {{\n  address = \"{ADDR}\"\n  tls_disable = true\n}}\n\napi_addr = \"http://{ADDR}\"\nwork_dir = \"{dir}\"\nlog_level = \"info\"\n"
    )
}

/// Starts `rvault server` in the background on a fresh temp dir; records its pid and dir.
pub(super) fn start(files: &Files) -> Result<Pairs, String> {
    let bin = binary().ok_or("rvault is not installed")?;
    let dir = process::temp_dir("rvault")?;
    std::fs::create_dir_all(dir.join("data")).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let config = dir.join("config.hcl");
    std::fs::write(&config, config_hcl(&dir)).map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let config_arg = config.to_string_lossy().into_owned();
    let pid = process::spawn(files, &bin, &["server", "--config", &config_arg], &dir, "onex-rvault.log")?;
    Ok(vec![("pid".to_owned(), pid.to_string()), ("dir".to_owned(), dir.to_string_lossy().into_owned())])
}

/// Stops the `rvault` that `start` started (by its pid) and removes its data dir.
pub(super) fn stop(_files: &Files, details: &Details) -> Result<(), String> {
    process::stop(detail(details, "pid"), BINARY, detail(details, "dir"))
}

/// The unseal key and root token from `/v1/sys/init`'s reply.
fn parse_init(reply: &Value) -> Result<(String, String), String> {
    let key = reply["keys"].get(0).and_then(Value::as_str).ok_or("init reply has no `keys[0]`")?;
    let token = reply["root_token"].as_str().ok_or("init reply has no `root_token`")?;
    Ok((key.to_owned(), token.to_owned()))
}

/// Whether a `/v1/sys/mounts` reply lists `secret/` (at the top or under `data`).
pub(super) fn has_secret_mount(reply: &Value) -> bool {
    reply.get("secret/").is_some() || reply["data"].get("secret/").is_some()
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Initialises (once per data dir), unseals and mounts `secret/` as KV v1; returns the env lines.
pub(super) fn prepare(_files: &Files, details: &Details, deadline: Instant) -> Result<Pairs, String> {
    let dir = detail(details, "dir").map(PathBuf::from).ok_or_else(|| {
        format!("something answers on {ADDR}, but `services up` did not start it, so it has no token for it; stop it and rerun")
    })?;
    let initialized = loop {
        match request(ADDR, "GET", "/v1/sys/init", None, None).and_then(|r| r.json()) {
            Ok(reply) => break reply["initialized"].as_bool().unwrap_or(false),
            Err(e) if Instant::now() >= deadline => return Err(format!("rvault does not answer /v1/sys/init: {e}")),
            Err(_) => sleep(Duration::from_millis(250)),
        }
    };
    let init_file = dir.join(INIT_FILE);
    let (key, token) = if initialized {
        let text =
            std::fs::read_to_string(&init_file).map_err(|e| format!("cannot read {}: {e}", init_file.display()))?;
        parse_init(&serde_json::from_str(&text).map_err(|e| format!("{}: {e}", init_file.display()))?)?
    } else {
        let reply =
            request(ADDR, "PUT", "/v1/sys/init", None, Some(&json!({"secret_shares": 1, "secret_threshold": 1})))?;
        if !reply.ok() {
            return Err(format!("rvault init failed with status {}", reply.status));
        }
        let body = reply.json()?;
        write_private(&init_file, &body.to_string())?;
        println!("services: initialised rvault (unseal key and root token in {})", init_file.display());
        parse_init(&body)?
    };
    let status = request(ADDR, "GET", "/v1/sys/seal-status", None, None)?.json()?;
    if status["sealed"].as_bool() != Some(false) {
        let reply = request(ADDR, "PUT", "/v1/sys/unseal", None, Some(&json!({"key": key})))?;
        if !reply.ok() || reply.json()?["sealed"].as_bool() != Some(false) {
            return Err(format!("rvault did not unseal (status {})", reply.status));
        }
        println!("services: unsealed rvault");
    }
    let mounts = request(ADDR, "GET", "/v1/sys/mounts", Some(&token), None)?;
    if !mounts.ok() {
        return Err(format!("rvault refused to list mounts (status {})", mounts.status));
    }
    if !has_secret_mount(&mounts.json()?) {
        let reply = request(ADDR, "POST", "/v1/sys/mounts/secret", Some(&token), Some(&json!({"type": "kv"})))?;
        if !reply.ok() {
            return Err(format!("rvault refused to mount `secret/` (status {})", reply.status));
        }
        println!("services: mounted KV v1 at secret/");
    }
    let bin = binary().ok_or("rvault is not installed")?;
    Ok(vec![
        ("ONEX_VAULT_ADDR".to_owned(), format!("http://{ADDR}")),
        ("ONEX_VAULT_TOKEN".to_owned(), token),
        ("ONEX_RVAULT_BIN".to_owned(), bin.to_string_lossy().into_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_keeps_data_in_the_temp_dir_and_listens_plain_on_loopback() {
        let hcl = config_hcl(Path::new("/tmp/x"));
        assert!(hcl.contains("storage \"file\" {\n  path = \"/tmp/x/data\"\n}"), "{hcl}");
        assert!(hcl.contains(&format!("address = \"{ADDR}\"\n  tls_disable = true")), "{hcl}");
        assert!(ADDR.starts_with("127.0.0.1:"));
    }

    #[test]
    fn init_replies_and_mount_tables_are_read() {
        let reply = json!({"keys": ["abcd"], "root_token": "tok"});
        assert_eq!(parse_init(&reply).unwrap(), ("abcd".to_owned(), "tok".to_owned()));
        assert!(parse_init(&json!({"keys": []})).is_err());
        assert!(has_secret_mount(&json!({"secret/": {"type": "kv"}})));
        assert!(has_secret_mount(&json!({"data": {"secret/": {"type": "kv"}}})));
        assert!(!has_secret_mount(&json!({"sys/": {"type": "system"}})));
    }
}
