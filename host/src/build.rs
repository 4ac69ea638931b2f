//! `chatgate build`: runs each component's `[component.x.build] command`, as `spin build` does.

use chatgate::manifest::Manifest;
use std::process::Command;

/// Runs every component's build commands in manifest order, stopping at the first failure.
pub fn build_components(manifest: &Manifest, only: &[String]) -> wasmtime::Result<()> {
    for (id, component) in &manifest.components {
        if !only.is_empty() && !only.contains(id) {
            continue;
        }
        let Some(build) = &component.build else {
            continue;
        };
        let workdir = match &build.workdir {
            Some(dir) => manifest.resolve_path(dir),
            None => manifest.base_dir.clone(),
        };
        for command in build.command.commands() {
            eprintln!("building component `{id}`: {command}");
            let status = Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&workdir)
                .status()
                .map_err(|e| wasmtime::format_err!("cannot run build command for `{id}`: {e}"))?;
            if !status.success() {
                wasmtime::bail!("build command for component `{id}` failed ({status}): {command}");
            }
        }
    }
    Ok(())
}
