//! `cargo xtask package`: packs every published crate as `cargo publish`
//! would, unpacks the packages into a scratch workspace where each
//! perfkit dependency resolves to its package (not to the repository), and
//! builds and tests them there. A test that reads the repository outside
//! its crate, or a file missing from a package, fails here.

use std::{fs, path::Path, process::Command};

/// The CLI's integration tests run from its package only for the modules
/// that need no privileges and no long workloads: enough to show that its
/// test data and workloads are in the package. The whole suite runs from
/// the repository (`cargo xtask test`).
const CLI_TEST_FILTER: &str = "render::";

pub fn main(root: &Path) -> Result<(), String> {
    let published = published_crates(root)?;
    eprintln!("xtask: packaging {} crates: {}", published.len(), published.join(", "));
    let mut pack = Command::new("cargo");
    pack.args(["package", "--no-verify", "--allow-dirty", "--locked"]).current_dir(root);
    for name in &published {
        pack.args(["-p", name]);
    }
    run(&mut pack)?;

    let version = workspace_version(root)?;
    let scratch = root.join("target/package-check");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).map_err(|e| format!("removing {}: {e}", scratch.display()))?;
    }
    fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let mut members = Vec::new();
    for name in &published {
        let file = root.join(format!("target/package/{name}-{version}.crate"));
        run(Command::new("tar").arg("-xzf").arg(&file).arg("-C").arg(&scratch))?;
        members.push(format!("{name}-{version}"));
    }
    // The scratch workspace: the packages as members, every perfkit
    // dependency patched to its package, the repository's lock file so the
    // same dependency versions are built, and the repository's profiles.
    let mut manifest = String::from("[workspace]\nresolver = \"3\"\nmembers = [\n");
    for m in &members {
        manifest.push_str(&format!("    \"{m}\",\n"));
    }
    manifest.push_str("]\n\n[patch.crates-io]\n");
    for (name, dir) in published.iter().zip(&members) {
        manifest.push_str(&format!("{name} = {{ path = \"{dir}\" }}\n"));
    }
    manifest.push_str(&profiles(root)?);
    fs::write(scratch.join("Cargo.toml"), manifest).map_err(|e| e.to_string())?;
    fs::copy(root.join("Cargo.lock"), scratch.join("Cargo.lock")).map_err(|e| e.to_string())?;

    // Built into the repository's target directory: the third-party
    // dependencies are already there; the perfkit crates, from other
    // paths, are built anew.
    let target = root.join("target");
    let cargo = |args: &[&str]| {
        let mut c = Command::new("cargo");
        c.args(args).current_dir(&scratch).env("CARGO_TARGET_DIR", &target);
        c
    };
    run(&mut cargo(&["build", "--workspace", "--all-targets"]))?;
    run(&mut cargo(&["test", "--workspace", "--exclude", "perfkit-cli"]))?;
    run(&mut cargo(&["test", "-p", "perfkit-cli", "--test", "integration", "--", CLI_TEST_FILTER]))?;
    eprintln!("xtask: every published crate builds and tests from its package");
    Ok(())
}

/// The workspace members whose `publish` allows crates.io.
fn published_crates(root: &Path) -> Result<Vec<String>, String> {
    let out = Command::new("cargo")
        .args(["metadata", "--no-deps", "--format-version", "1", "--locked"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    for p in meta["packages"].as_array().ok_or("cargo metadata: no packages")? {
        // `publish` is null when any registry is allowed, a list otherwise
        // (empty for `publish = false`).
        let publishable = match &p["publish"] {
            serde_json::Value::Null => true,
            serde_json::Value::Array(regs) => regs.iter().any(|r| r == "crates-io"),
            _ => false,
        };
        if publishable && let Some(name) = p["name"].as_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn workspace_version(root: &Path) -> Result<String, String> {
    let text = fs::read_to_string(root.join("Cargo.toml")).map_err(|e| e.to_string())?;
    let section = text.split("[workspace.package]").nth(1).ok_or("no [workspace.package]")?;
    section
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .ok_or_else(|| "no version in [workspace.package]".to_owned())
}

/// The repository manifest's `[profile.*]` sections, verbatim.
fn profiles(root: &Path) -> Result<String, String> {
    let text = fs::read_to_string(root.join("Cargo.toml")).map_err(|e| e.to_string())?;
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with('[') {
            inside = line.starts_with("[profile.");
            if inside {
                out.push('\n');
            }
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("{shown}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{shown} failed ({status})")) }
}
