//! `onex-runtime-host stamp` and `verify` run as a user runs them: the README's two lines,
//! exit codes 0/1/2, `--json`, and the summary line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use onex_e2e::{host_binary, scratch_dir};

fn host(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(host_binary()).args(args).current_dir(dir).output().expect("run onex-runtime-host")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn stamp_then_verify_as_in_the_readme() {
    let dir = scratch_dir("stamp-readme");
    std::fs::write(dir.join("deploy.sh"), "#!/bin/sh\necho deploy\n").unwrap();
    std::fs::write(dir.join("notes.md"), "# Notes\n").unwrap();
    let out = host(&dir, &["stamp", "deploy.sh", "notes.md"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2 stamped, 0 hash-only (content left unchanged), 0 failed"),
        "{}",
        text(&out.stdout)
    );
    let script = std::fs::read_to_string(dir.join("deploy.sh")).unwrap();
    assert!(script.starts_with("#!/bin/sh\n# ONEX:uid="), "{script}");
    let out = host(&dir, &["verify", "deploy.sh", "notes.md"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).ends_with("2 files: 2 valid\n"), "{}", text(&out.stdout));
}

#[test]
fn verify_exits_1_on_modified_or_missing_and_reports_json() {
    let dir = scratch_dir("stamp-verify");
    std::fs::write(dir.join("a.py"), "x = 1\n").unwrap();
    std::fs::write(dir.join("b.py"), "y = 2\n").unwrap();
    assert!(host(&dir, &["stamp", "a.py"]).status.success());
    std::fs::write(dir.join("a.py"), std::fs::read_to_string(dir.join("a.py")).unwrap() + "x = 3\n").unwrap();
    let out = host(&dir, &["verify", "--json", "a.py", "b.py", "gone.py"]);
    assert_eq!(out.status.code(), Some(1));
    let verdicts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<&str> = verdicts.as_array().unwrap().iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["modified", "missing", "error"]);
    assert_eq!(verdicts[0]["expected"].as_str().unwrap().len(), 64);
    assert!(verdicts[2]["error"].as_str().unwrap().contains("gone.py"));
    assert!(text(&out.stderr).contains("3 files: 1 error, 1 missing, 1 modified"), "{}", text(&out.stderr));
}

#[test]
fn usage_errors_exit_2() {
    let dir = scratch_dir("stamp-usage");
    assert_eq!(host(&dir, &["verify"]).status.code(), Some(2), "no files");
    assert_eq!(host(&dir, &["stamp", "--format", "fancy", "x"]).status.code(), Some(2));
    std::fs::write(dir.join("a.py"), "1\n").unwrap();
    std::fs::write(dir.join("b.py"), "2\n").unwrap();
    assert_eq!(host(&dir, &["stamp", "--stdout", "a.py", "b.py"]).status.code(), Some(2));
}

#[test]
fn stdout_mode_prints_the_stamped_file_and_leaves_it() {
    let dir = scratch_dir("stamp-stdout");
    std::fs::write(dir.join("q.sql"), "SELECT 1;\n").unwrap();
    let out = host(&dir, &["stamp", "--stdout", "--format", "rich", "q.sql"]);
    assert!(out.status.success());
    let printed = text(&out.stdout);
    assert!(printed.starts_with("SELECT 1;\n\n-- <!-- ONEX_METADATA_START -->\n"), "{printed}");
    assert_eq!(std::fs::read_to_string(dir.join("q.sql")).unwrap(), "SELECT 1;\n");
}

#[test]
fn a_failing_file_does_not_stop_the_others() {
    let dir = scratch_dir("stamp-partial");
    std::fs::write(dir.join("ok.py"), "pass\n").unwrap();
    let out = host(&dir, &["stamp", "missing.py", "ok.py"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("missing.py: cannot open"), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 stamped, 0 hash-only (content left unchanged), 1 failed"));
    assert!(std::fs::read_to_string(dir.join("ok.py")).unwrap().starts_with("# ONEX:"));
}
