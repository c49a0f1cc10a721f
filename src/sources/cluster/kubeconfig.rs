//! The kubeconfig as kubectl reads it: `--kubeconfig` or `KUBECONFIG` (merged), the context
//! chosen by `--context`, and kubectl's global flags laid over the chosen cluster and user
//! (`--server`, `--token`, `--certificate-authority`, `--client-certificate`, `--client-key`,
//! `--insecure-skip-tls-verify`, `--tls-server-name`, `--as`, `--as-group`, `--as-uid`). A token
//! file is read and trimmed, as kubectl does; an exec plugin that is not installed is named with
//! its `installHint`.

use super::args::ClusterArgs;
use super::error::{ClusterError, name_list};
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use secrecy::SecretString;
use std::path::{Path, PathBuf};

/// The names of what kubectl's flags make when no kubeconfig names a cluster.
const FLAGS_ONLY: &str = "command-line";

/// `--kubeconfig` alone when given (as kubectl), else `KUBECONFIG` merged, else `~/.kube/config`.
pub fn read_kubeconfig(args: &ClusterArgs) -> Result<Kubeconfig, ClusterError> {
    read_kubeconfig_with(args, std::env::var_os("KUBECONFIG").as_deref())
}

/// [`read_kubeconfig`] with the value of `KUBECONFIG` given, so it can be tested without the
/// process environment. Several paths are merged as kubectl does: the first to set a value wins.
pub fn read_kubeconfig_with(
    args: &ClusterArgs,
    kubeconfig_env: Option<&std::ffi::OsStr>,
) -> Result<Kubeconfig, ClusterError> {
    let unreadable = |error: kube::config::KubeconfigError| {
        ClusterError::Kubeconfig(super::error::one_line(&error.to_string()))
    };
    if let Some(path) = &args.kubeconfig {
        return read_file(path);
    }
    let paths: Vec<std::path::PathBuf> = kubeconfig_env
        .map(|value| {
            std::env::split_paths(value)
                .filter(|path| !path.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    if paths.is_empty() {
        return match home_kubeconfig() {
            Some(path) if path.exists() => read_file(&path),
            _ => Err(ClusterError::NoKubeconfig),
        };
    }
    let mut merged: Option<Kubeconfig> = None;
    for path in &paths {
        // kubectl skips KUBECONFIG entries that do not exist.
        if !path.exists() {
            continue;
        }
        let next = read_file(path)?;
        merged = Some(match merged {
            Some(merged) => merged.merge(next).map_err(unreadable)?,
            None => next,
        });
    }
    merged.ok_or_else(|| ClusterError::KubeconfigFilesMissing {
        paths: paths
            .iter()
            .map(|path| path.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// One kubeconfig file. kube-client decodes UTF-16 files (a byte-order mark first) two bytes at
/// a time and panics on an odd count (kube-client 5.0 `file_config.rs` `read_path`; found by
/// `fuzz/fuzz_targets/kubeconfig.rs`): such a file is refused here first.
fn read_file(path: &std::path::Path) -> Result<Kubeconfig, ClusterError> {
    if let Ok(bytes) = std::fs::read(path)
        && matches!(bytes.as_slice(), [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..])
        && bytes.len() % 2 == 1
    {
        return Err(ClusterError::Kubeconfig(format!(
            "{}: UTF-16 text (it starts with a byte-order mark) with an odd number of bytes: the file is cut short; save it again, as UTF-8",
            path.display()
        )));
    }
    Kubeconfig::read_from(path)
        .map_err(|error| ClusterError::Kubeconfig(super::error::one_line(&error.to_string())))
}

fn home_kubeconfig() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".kube").join("config"))
}

/// The context name to use, checked against the kubeconfig along with `--cluster` and `--user`.
pub fn choose_context(kubeconfig: &Kubeconfig, args: &ClusterArgs) -> Result<String, ClusterError> {
    let contexts = || name_list(kubeconfig.contexts.iter().map(|c| c.name.as_str()));
    let name = match (&args.context, &kubeconfig.current_context) {
        (Some(name), _) => name.clone(),
        (None, Some(current)) if !current.is_empty() => current.clone(),
        (None, _) => {
            return Err(ClusterError::NoCurrentContext {
                available: contexts(),
            });
        }
    };
    if !kubeconfig.contexts.iter().any(|c| c.name == name) {
        return Err(ClusterError::UnknownContext {
            name,
            available: contexts(),
        });
    }
    if let Some(cluster) = &args.cluster
        && !kubeconfig.clusters.iter().any(|c| &c.name == cluster)
    {
        return Err(ClusterError::UnknownCluster {
            name: cluster.clone(),
            available: name_list(kubeconfig.clusters.iter().map(|c| c.name.as_str())),
        });
    }
    if let Some(user) = &args.user
        && !kubeconfig.auth_infos.iter().any(|u| &u.name == user)
    {
        return Err(ClusterError::UnknownUser {
            name: user.clone(),
            available: name_list(kubeconfig.auth_infos.iter().map(|u| u.name.as_str())),
        });
    }
    Ok(name)
}

/// The kubeconfig for this run, the context to use, and that context's cluster's `proxy-url`.
pub struct Resolved {
    pub kubeconfig: Kubeconfig,
    pub context: String,
    pub proxy_url: Option<String>,
}

/// The kubeconfig for this run: the one read, with `args`' overrides on the chosen context's
/// cluster and user; with `--server` and no usable kubeconfig, one made of the flags alone (as
/// kubectl).
pub fn resolve(args: &ClusterArgs) -> Result<Resolved, ClusterError> {
    let read = read_kubeconfig(args);
    let kubeconfig = match read {
        Ok(kubeconfig) => kubeconfig,
        // kubectl runs on its flags alone when no kubeconfig exists.
        Err(ClusterError::NoKubeconfig | ClusterError::KubeconfigFilesMissing { .. })
            if args.server.is_some() =>
        {
            Kubeconfig::default()
        }
        Err(error) => return Err(error),
    };
    resolve_from(kubeconfig, args)
}

/// [`resolve`] on a kubeconfig already read.
pub fn resolve_from(
    mut kubeconfig: Kubeconfig,
    args: &ClusterArgs,
) -> Result<Resolved, ClusterError> {
    let context = match choose_context(&kubeconfig, args) {
        Ok(context) => context,
        Err(ClusterError::NoCurrentContext { .. }) if args.server.is_some() => {
            add_flags_only_context(&mut kubeconfig);
            FLAGS_ONLY.to_string()
        }
        Err(error) => return Err(error),
    };
    let (cluster_name, user_name) = {
        let chosen = kubeconfig
            .contexts
            .iter()
            .find(|named| named.name == context)
            .and_then(|named| named.context.as_ref());
        (
            args.cluster
                .clone()
                .or_else(|| chosen.map(|c| c.cluster.clone())),
            args.user
                .clone()
                .or_else(|| chosen.and_then(|c| c.user.clone())),
        )
    };
    let mut proxy_url = None;
    if let Some(cluster) = cluster_name.and_then(|name| cluster_mut(&mut kubeconfig, &name)) {
        override_cluster(cluster, args);
        proxy_url = cluster.proxy_url.clone();
    }
    let user = match user_name {
        Some(name) => user_mut(&mut kubeconfig, &name),
        None if needs_user(args) => Some(user_for_context(&mut kubeconfig, &context)),
        None => None,
    };
    if let Some(user) = user {
        override_user(user, args);
        read_token_file(user)?;
        check_exec_plugin(user)?;
    }
    Ok(Resolved {
        kubeconfig,
        context,
        proxy_url,
    })
}

fn add_flags_only_context(kubeconfig: &mut Kubeconfig) {
    kubeconfig.clusters.push(NamedCluster {
        name: FLAGS_ONLY.to_string(),
        cluster: Some(Cluster::default()),
        other: Default::default(),
    });
    kubeconfig.auth_infos.push(NamedAuthInfo {
        name: FLAGS_ONLY.to_string(),
        auth_info: Some(AuthInfo::default()),
        other: Default::default(),
    });
    kubeconfig.contexts.push(NamedContext {
        name: FLAGS_ONLY.to_string(),
        context: Some(Context {
            cluster: FLAGS_ONLY.to_string(),
            user: Some(FLAGS_ONLY.to_string()),
            ..Context::default()
        }),
        other: Default::default(),
    });
}

fn cluster_mut<'a>(kubeconfig: &'a mut Kubeconfig, name: &str) -> Option<&'a mut Cluster> {
    let named = kubeconfig
        .clusters
        .iter_mut()
        .find(|named| named.name == name)?;
    Some(named.cluster.get_or_insert_with(Cluster::default))
}

fn user_mut<'a>(kubeconfig: &'a mut Kubeconfig, name: &str) -> Option<&'a mut AuthInfo> {
    let named = kubeconfig
        .auth_infos
        .iter_mut()
        .find(|named| named.name == name)?;
    Some(named.auth_info.get_or_insert_with(AuthInfo::default))
}

/// A context without a user, given credentials by flags, gets a user of its own.
fn user_for_context<'a>(kubeconfig: &'a mut Kubeconfig, context: &str) -> &'a mut AuthInfo {
    let name = format!("{FLAGS_ONLY}-{context}");
    if let Some(named) = kubeconfig
        .contexts
        .iter_mut()
        .find(|named| named.name == context)
        && let Some(context) = named.context.as_mut()
    {
        context.user = Some(name.clone());
    }
    kubeconfig.auth_infos.push(NamedAuthInfo {
        name,
        auth_info: Some(AuthInfo::default()),
        other: Default::default(),
    });
    let last = kubeconfig.auth_infos.len() - 1;
    kubeconfig.auth_infos[last]
        .auth_info
        .get_or_insert_with(AuthInfo::default)
}

fn needs_user(args: &ClusterArgs) -> bool {
    args.token.is_some()
        || args.client_certificate.is_some()
        || args.client_key.is_some()
        || args.impersonate.is_some()
        || !args.impersonate_groups.is_empty()
        || args.impersonate_uid.is_some()
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

fn override_cluster(cluster: &mut Cluster, args: &ClusterArgs) {
    if let Some(server) = &args.server {
        cluster.server = Some(server.clone());
    }
    if let Some(path) = &args.certificate_authority {
        cluster.certificate_authority = Some(path_text(path));
        cluster.certificate_authority_data = None;
    }
    if args.insecure_skip_tls_verify {
        // kubectl: the flag without a CA of its own clears the kubeconfig's CA.
        cluster.insecure_skip_tls_verify = Some(true);
        if args.certificate_authority.is_none() {
            cluster.certificate_authority = None;
            cluster.certificate_authority_data = None;
        }
    }
    if let Some(name) = &args.tls_server_name {
        cluster.tls_server_name = Some(name.clone());
    }
}

fn override_user(user: &mut AuthInfo, args: &ClusterArgs) {
    if let Some(token) = &args.token {
        // A token on the command line is the credential: the kubeconfig's others step aside.
        user.token = Some(SecretString::from(token.expose().to_string()));
        user.token_file = None;
        user.exec = None;
        user.auth_provider = None;
        user.username = None;
        user.password = None;
    }
    if let Some(path) = &args.client_certificate {
        user.client_certificate = Some(path_text(path));
        user.client_certificate_data = None;
    }
    if let Some(path) = &args.client_key {
        user.client_key = Some(path_text(path));
        user.client_key_data = None;
    }
    if let Some(name) = &args.impersonate {
        user.impersonate = Some(name.clone());
    }
    if !args.impersonate_groups.is_empty() {
        user.impersonate_groups = Some(args.impersonate_groups.clone());
    }
    if let Some(uid) = &args.impersonate_uid {
        user.impersonate_uid = Some(uid.clone());
    }
}

/// kubectl reads `tokenFile` and trims the white space around the token (a file written with
/// `echo` ends with a newline, which is not a valid header value).
fn read_token_file(user: &mut AuthInfo) -> Result<(), ClusterError> {
    if user.token.is_some() {
        return Ok(());
    }
    let Some(path) = user.token_file.take() else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path).map_err(|error| {
        ClusterError::Kubeconfig(format!("cannot read the user's tokenFile {path}: {error}"))
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ClusterError::Kubeconfig(format!(
            "the user's tokenFile {path} is empty"
        )));
    }
    user.token = Some(SecretString::from(token.to_string()));
    Ok(())
}

/// An exec credential plugin whose command is not on `PATH` fails as kubectl does: naming the
/// command and the plugin's `installHint`.
fn check_exec_plugin(user: &AuthInfo) -> Result<(), ClusterError> {
    let Some(exec) = &user.exec else {
        return Ok(());
    };
    let Some(command) = exec.command.as_deref() else {
        return Err(ClusterError::Kubeconfig(
            "the user's exec credential plugin has no command".to_string(),
        ));
    };
    if find_command(command).is_some() {
        return Ok(());
    }
    let hint = exec
        .install_hint
        .as_deref()
        .map(|hint| hint.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|hint| !hint.is_empty())
        .map(|hint| format!("; {hint}"))
        .unwrap_or_else(|| {
            "; install it or fix the user's exec command in the kubeconfig".to_string()
        });
    Err(ClusterError::Kubeconfig(format!(
        "exec credential plugin {command:?} not found{hint}"
    )))
}

fn find_command(command: &str) -> Option<PathBuf> {
    let path = Path::new(command);
    if path.components().count() > 1 {
        return path.is_file().then(|| path.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(command))
            .find(|candidate| candidate.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzzer's crash (a UTF-16 byte-order mark and one byte more) and its even twin.
    #[test]
    fn a_cut_utf16_kubeconfig_is_a_one_line_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, [0xFE, 0xFF, 0xFF]).unwrap();
        let args = ClusterArgs {
            kubeconfig: Some(path.clone()),
            ..ClusterArgs::default()
        };
        let error = read_kubeconfig_with(&args, None).unwrap_err().to_string();
        assert!(error.contains("odd number of bytes"), "{error}");
        assert!(!error.contains('\n'), "{error}");
        let error = read_kubeconfig_with(&ClusterArgs::default(), Some(path.as_os_str()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("save it again, as UTF-8"), "{error}");
        std::fs::write(&path, [0xFE, 0xFF, 0x00, 0x7B]).unwrap();
        assert!(read_kubeconfig_with(&args, None).is_err());
    }
}
