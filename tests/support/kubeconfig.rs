//! Kubeconfig files for tests: clusters with an inline CA, token users, contexts.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct KubeconfigFile {
    clusters: Vec<Value>,
    users: Vec<Value>,
    contexts: Vec<Value>,
    current: Option<String>,
}

impl KubeconfigFile {
    pub fn new() -> Self {
        Self::default()
    }

    /// A cluster at `server`; `ca_pem` goes in `certificate-authority-data`.
    pub fn cluster(mut self, name: &str, server: &str, ca_pem: Option<&str>) -> Self {
        let mut cluster = json!({"server": server});
        if let Some(ca_pem) = ca_pem {
            cluster["certificate-authority-data"] = json!(STANDARD.encode(ca_pem));
        }
        self.clusters
            .push(json!({"name": name, "cluster": cluster}));
        self
    }

    pub fn user(mut self, name: &str, token: &str) -> Self {
        self.users
            .push(json!({"name": name, "user": {"token": token}}));
        self
    }

    /// A user whose token comes from an exec credential plugin (`command args…`).
    pub fn exec_user(mut self, name: &str, command: &str, args: &[&str]) -> Self {
        self.users.push(json!({"name": name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": command,
            "args": args,
            "interactiveMode": "Never",
            "provideClusterInfo": false,
        }}}));
        self
    }

    pub fn context(
        mut self,
        name: &str,
        cluster: &str,
        user: &str,
        namespace: Option<&str>,
    ) -> Self {
        let mut context = json!({"cluster": cluster, "user": user});
        if let Some(namespace) = namespace {
            context["namespace"] = json!(namespace);
        }
        self.contexts
            .push(json!({"name": name, "context": context}));
        self
    }

    pub fn current(mut self, name: &str) -> Self {
        self.current = Some(name.to_string());
        self
    }

    pub fn to_yaml(&self) -> String {
        let mut document = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": self.clusters,
            "users": self.users,
            "contexts": self.contexts,
        });
        if let Some(current) = &self.current {
            document["current-context"] = json!(current);
        }
        serde_yaml::to_string(&document).unwrap()
    }

    /// Writes the file and returns its path.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.to_yaml()).unwrap();
        path.to_path_buf()
    }
}
