//! The sandbox image: the gateway binary alone, `FROM scratch`, built through the engine's API
//! from a context made here — no registry, no network, no `Containerfile` on disk.
//!
//! A dynamically linked gateway takes its shared libraries and loader along (as `ldd` lists
//! them, at the same paths), so the image runs whatever libc the host built it with.

use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt as _;

use super::GATEWAY_PATH;
use crate::provider::ProviderError;

/// Builds `repository:tag` from the gateway binary at `gateway` and returns the image's id.
pub async fn build_gateway_image(
    engine: &Docker,
    gateway: &Path,
    repository: &str,
    tag: &str,
) -> Result<String, ProviderError> {
    let reference = format!("{repository}:{tag}");
    let context = context(gateway)?;
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Containerfile")
        .t(&reference)
        .rm(true)
        .build();
    let mut progress = engine.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = progress.next().await {
        let step = step.map_err(|e| ProviderError::failed(&format!("building {reference}"), e))?;
        if let Some(error) = step.error_detail.and_then(|d| d.message) {
            return Err(ProviderError::Failed(format!(
                "building {reference}: {error}"
            )));
        }
    }
    let image = engine.inspect_image(&reference).await.map_err(|e| {
        ProviderError::failed(&format!("inspecting {reference} after its build"), e)
    })?;
    image
        .id
        .ok_or_else(|| ProviderError::Failed(format!("{reference} has no id after its build")))
}

/// The build context: a tar of the gateway, its libraries and a `Containerfile`.
fn context(gateway: &Path) -> Result<Vec<u8>, ProviderError> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(true);
    // Buildah reads no GNU sparse entries, and a linked binary can have holes.
    tar.sparse(false);
    let add = |tar: &mut tar::Builder<Vec<u8>>, from: &Path, to: &str| {
        tar.append_path_with_name(from, to.trim_start_matches('/'))
            .map_err(|e| {
                ProviderError::failed(&format!("adding {} to the image", from.display()), e)
            })
    };
    add(&mut tar, gateway, GATEWAY_PATH)?;
    for library in shared_libraries(gateway)? {
        let to = library.to_string_lossy().into_owned();
        add(&mut tar, &library, &to)?;
    }
    let containerfile = format!(
        "FROM scratch\nCOPY . /\nENTRYPOINT [\"{GATEWAY_PATH}\"]\nLABEL burrow.image=gateway\n"
    );
    let mut header = tar::Header::new_gnu();
    header.set_size(containerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Containerfile", containerfile.as_bytes())
        .map_err(|e| ProviderError::failed("adding the Containerfile", e))?;
    tar.into_inner()
        .map_err(|e| ProviderError::failed("writing the build context", e))
}

/// The shared libraries and loader `ldd` lists for `binary` (none for a static binary).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, ProviderError> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| ProviderError::failed("running ldd (from libc-bin)", e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // "not a dynamic executable": a static gateway needs nothing more.
        return Ok(Vec::new());
    }
    Ok(parse_ldd(&text))
}

/// Paths from `ldd` lines: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and
/// `/lib64/ld-linux-x86-64.so.2 (0x…)`; the kernel's `linux-vdso.so.1 (0x…)` has no file.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => line,
            };
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_the_libraries_and_the_loader_but_not_the_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f53)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f53)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f53)\n";
        assert_eq!(
            parse_ldd(text),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
    }
}
