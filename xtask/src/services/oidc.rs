//! oidc-provider (an OpenID Connect provider on Node) as the tests' identity provider: the npm
//! package pinned in `xtask/oidc/package.json`, installed with `npm ci` into a cache outside the
//! repo, running `xtask/oidc/server.mjs` on loopback with its signing keys in a temp dir.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::request;
use super::{Details, Files, Pairs, detail, process, run_with_env};
use crate::cmd;

/// Where it answers (a fixed port beside rvault's, so a developer's own provider is left alone).
pub(super) const ADDR: &str = "127.0.0.1:18300";
/// The issuer the provider names itself by (the script's default for its port).
const ISSUER: &str = "http://127.0.0.1:18300";
/// The npm package.
const PACKAGE: &str = "oidc-provider";
/// `xtask/oidc/package.json`, where the package's exact version is pinned.
const PACKAGE_JSON: &str = include_str!("../../oidc/package.json");
/// The files `install` copies into the cache (`npm ci` installs what the lock says).
const MANIFESTS: [&str; 2] = ["package.json", "package-lock.json"];
/// The provider script, copied into the cache on every `start` (so edits take effect).
const SCRIPT: &str = "server.mjs";
/// The private signing keys (JWKS) under the data dir; the script makes it (mode 0600).
const KEYS_FILE: &str = "keys.json";
/// The program that runs the script.
const NODE: &str = "node";
/// What answers 200 once the provider is ready.
const DISCOVERY: &str = "/.well-known/openid-configuration";

/// The exact version of `package` that `package_json` pins (`"8.8.1"`, not a range).
fn parse_pin(package_json: &str, package: &str) -> Result<String, String> {
    let manifest: Value =
        serde_json::from_str(package_json).map_err(|e| format!("xtask/oidc/package.json is not JSON: {e}"))?;
    let version = manifest["dependencies"][package]
        .as_str()
        .ok_or_else(|| format!("xtask/oidc/package.json has no `dependencies.{package}`"))?;
    let exact = version.split('.').count() == 3 && version.split('.').all(|p| p.parse::<u32>().is_ok());
    if exact {
        Ok(version.to_owned())
    } else {
        Err(format!("xtask/oidc/package.json pins {package} to `{version}`, not an exact version"))
    }
}

/// The pinned oidc-provider version.
fn version() -> Result<String, String> {
    parse_pin(PACKAGE_JSON, PACKAGE)
}

/// The install's directory: beside the cached cargo root, named by the pinned version.
fn cache_dir() -> Result<PathBuf, String> {
    Ok(cmd::cargo_root().with_file_name(format!("{PACKAGE}-{}", version()?)))
}

/// `xtask/oidc` in this checkout (the manifests and the script).
fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

/// `node` on `PATH`, as an absolute path.
fn node() -> Option<PathBuf> {
    cmd::find_tool(NODE).and_then(|p| std::path::absolute(p).ok())
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to).map(|_| ()).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

/// Whether `dir` holds an install of the lock in `source` (a changed lock means a new install).
fn is_installed_in(dir: &Path, source: &Path) -> bool {
    let same_lock = std::fs::read(dir.join(MANIFESTS[1]))
        .ok()
        .is_some_and(|cached| std::fs::read(source.join(MANIFESTS[1])).is_ok_and(|wanted| cached == wanted));
    same_lock && dir.join("node_modules").join(PACKAGE).join("package.json").is_file()
}

pub(super) fn installed() -> bool {
    node().is_some() && cache_dir().is_ok_and(|dir| is_installed_in(&dir, &source_dir()))
}

/// Installs Debian's `nodejs` and `npm` when `node` is missing, then `npm ci` of
/// `xtask/oidc`'s manifests in [`cache_dir`].
pub(super) fn install() -> Result<(), String> {
    if node().is_none() || cmd::find_tool("npm").is_none() {
        println!("services: installing nodejs and npm (Node runs the OpenID Connect provider)");
        run_with_env("apt-get", &["update"], &[])?;
        run_with_env("apt-get", &["install", "-y", "nodejs", "npm"], &[("DEBIAN_FRONTEND", "noninteractive")])?;
    }
    let dir = cache_dir()?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for name in MANIFESTS {
        copy(&source_dir().join(name), &dir.join(name))?;
    }
    println!("services: `npm ci` of {PACKAGE}@{} in {}", version()?, dir.display());
    cmd::run(&dir, "npm", &["ci", "--no-audit", "--no-fund"])
}

/// The script's arguments: `script`, listening on [`ADDR`]'s port, keys in `keys`.
fn server_args(script: &Path, keys: &Path) -> Result<Vec<String>, String> {
    let port = ADDR.rsplit_once(':').map(|(_, port)| port).ok_or_else(|| format!("no port in {ADDR}"))?;
    Ok(vec![
        script.to_string_lossy().into_owned(),
        "--port".to_owned(),
        port.to_owned(),
        "--keys".to_owned(),
        keys.to_string_lossy().into_owned(),
    ])
}

/// Starts the provider in the background on a fresh temp dir (its keys made there); records
/// its pid and dir.
pub(super) fn start(files: &Files) -> Result<Pairs, String> {
    let node = node().ok_or("node is not installed")?;
    let script = cache_dir()?.join(SCRIPT);
    copy(&source_dir().join(SCRIPT), &script)?;
    let dir = process::temp_dir("oidc")?;
    let args = server_args(&script, &dir.join(KEYS_FILE))?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pid = process::spawn(files, &node, &args, &dir, "onex-oidc.log")?;
    Ok(vec![("pid".to_owned(), pid.to_string()), ("dir".to_owned(), dir.to_string_lossy().into_owned())])
}

/// Stops the provider `start` started (by its pid) and removes its data dir (and keys).
pub(super) fn stop(_files: &Files, details: &Details) -> Result<(), String> {
    process::stop(detail(details, "pid"), NODE, detail(details, "dir"))
}

/// The env lines: the issuer, the running instance's private keys (tests mint tokens of their
/// own signed with them), the script and `node` (tests run their own instance, e.g. to rotate
/// keys).
fn env_lines(keys: &Path, script: &Path, node: &Path) -> Pairs {
    vec![
        ("ONEX_OIDC_ISSUER".to_owned(), ISSUER.to_owned()),
        ("ONEX_OIDC_KEYS".to_owned(), keys.to_string_lossy().into_owned()),
        ("ONEX_OIDC_SERVER".to_owned(), script.to_string_lossy().into_owned()),
        ("ONEX_NODE".to_owned(), node.to_string_lossy().into_owned()),
    ]
}

/// Waits until discovery answers 200 naming [`ISSUER`]; returns the env lines.
pub(super) fn prepare(_files: &Files, details: &Details, deadline: Instant) -> Result<Pairs, String> {
    let dir = detail(details, "dir").map(PathBuf::from).ok_or_else(|| {
        format!("something answers on {ADDR}, but `services up` did not start it, so it has no keys for it; stop it and rerun")
    })?;
    let discovery = loop {
        match request(ADDR, "GET", DISCOVERY, None, None) {
            Ok(reply) if reply.status == 200 => break reply.json()?,
            Ok(reply) if Instant::now() >= deadline => {
                return Err(format!("the OpenID Connect provider answers {DISCOVERY} with status {}", reply.status));
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("the OpenID Connect provider does not answer {DISCOVERY}: {e}"));
            }
            Ok(_) | Err(_) => sleep(Duration::from_millis(250)),
        }
    };
    if discovery["issuer"].as_str() != Some(ISSUER) {
        return Err(format!("the provider on {ADDR} names issuer {}, not {ISSUER}", discovery["issuer"]));
    }
    let keys = dir.join(KEYS_FILE);
    if !keys.is_file() {
        return Err(format!("the provider on {ADDR} wrote no keys file {}", keys.display()));
    }
    let node = node().ok_or("node is not installed")?;
    Ok(env_lines(&keys, &cache_dir()?.join(SCRIPT), &node))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_is_an_exact_8x_version() {
        let version = version().unwrap();
        assert!(version.starts_with("8."), "{version}");
        assert_eq!(parse_pin(r#"{"dependencies": {"oidc-provider": "8.8.1"}}"#, PACKAGE).unwrap(), "8.8.1");
        assert!(parse_pin(r#"{"dependencies": {"oidc-provider": "^8.8.1"}}"#, PACKAGE).is_err());
        assert!(parse_pin(r#"{"dependencies": {"oidc-provider": "8.x"}}"#, PACKAGE).is_err());
        assert!(parse_pin(r#"{"dependencies": {}}"#, PACKAGE).is_err());
        assert!(parse_pin("not json", PACKAGE).is_err());
    }

    #[test]
    fn the_install_lives_in_the_cache_and_is_named_by_the_pin() {
        let dir = cache_dir().unwrap();
        assert_eq!(dir.parent(), cmd::cargo_root().parent());
        assert!(dir.ends_with(format!("oidc-provider-{}", version().unwrap())), "{}", dir.display());
        for name in MANIFESTS.iter().chain([&SCRIPT]) {
            assert!(source_dir().join(name).is_file(), "xtask/oidc/{name} is missing");
        }
    }

    #[test]
    fn the_lock_in_the_manifest_dir_is_the_one_pinned() {
        let lock: Value = serde_json::from_str(include_str!("../../oidc/package-lock.json")).unwrap();
        let locked = lock["packages"]["node_modules/oidc-provider"]["version"].as_str();
        assert_eq!(locked, Some(version().unwrap().as_str()), "run `npm install` in xtask/oidc");
    }

    #[test]
    fn the_server_listens_on_the_service_port_with_its_keys_in_the_data_dir() {
        let args = server_args(Path::new("/c/server.mjs"), Path::new("/tmp/d/keys.json")).unwrap();
        assert_eq!(args, ["/c/server.mjs", "--port", "18300", "--keys", "/tmp/d/keys.json"]);
        assert_eq!(ISSUER, format!("http://{ADDR}"));
    }

    #[test]
    fn env_lines_name_the_issuer_keys_script_and_node() {
        let lines = env_lines(Path::new("/tmp/d/keys.json"), Path::new("/c/server.mjs"), Path::new("/usr/bin/node"));
        let keys: Vec<&str> = lines.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["ONEX_OIDC_ISSUER", "ONEX_OIDC_KEYS", "ONEX_OIDC_SERVER", "ONEX_NODE"]);
        assert_eq!(lines[0].1, "http://127.0.0.1:18300");
        assert_eq!(lines[1].1, "/tmp/d/keys.json");
    }

    #[test]
    fn an_install_needs_the_same_lock_and_the_package() {
        let dir = process::temp_dir("oidc-test").unwrap();
        let (cache, source) = (dir.join("cache"), dir.join("source"));
        std::fs::create_dir_all(cache.join("node_modules").join(PACKAGE)).unwrap();
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join(MANIFESTS[1]), "{\"lock\": 1}").unwrap();
        assert!(!is_installed_in(&cache, &source));
        std::fs::write(cache.join(MANIFESTS[1]), "{\"lock\": 1}").unwrap();
        assert!(!is_installed_in(&cache, &source));
        std::fs::write(cache.join("node_modules").join(PACKAGE).join("package.json"), "{}").unwrap();
        assert!(is_installed_in(&cache, &source));
        std::fs::write(source.join(MANIFESTS[1]), "{\"lock\": 2}").unwrap();
        assert!(!is_installed_in(&cache, &source));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
