//! RBAC for the loopback API server: with a ClusterRole set, every request the token or client
//! certificate makes is authorized by the role's rules, as the RBAC authorizer does (apiGroups,
//! resources with `/subresource`, resourceNames, verbs; `*` matches anything; nonResourceURLs
//! match exactly or by a prefix ending in `*`), and what the rules do not allow is answered 403.

use serde_json::Value;

#[derive(Debug, Clone, Default)]
pub struct Role {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, Default)]
struct Rule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
    non_resource_urls: Vec<String>,
    verbs: Vec<String>,
}

/// What one request asks to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes<'a> {
    Resource {
        verb: &'a str,
        group: &'a str,
        /// `pods`, or `pods/portforward` for a subresource.
        resource: &'a str,
        name: Option<&'a str>,
    },
    NonResource {
        verb: &'a str,
        path: &'a str,
    },
}

impl Role {
    /// The ClusterRole among the YAML documents of `text`.
    pub fn from_yaml(text: &str) -> Role {
        use serde::Deserialize;
        let role = serde_yaml::Deserializer::from_str(text)
            .map(|document| Value::deserialize(document).expect("RBAC YAML"))
            .find(|document| document["kind"] == "ClusterRole")
            .expect("a ClusterRole in the RBAC YAML");
        let strings = |rule: &Value, key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|item| item.as_str().expect("a string").to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        let rules = role["rules"]
            .as_array()
            .expect("the ClusterRole has rules")
            .iter()
            .map(|rule| Rule {
                api_groups: strings(rule, "apiGroups"),
                resources: strings(rule, "resources"),
                resource_names: strings(rule, "resourceNames"),
                non_resource_urls: strings(rule, "nonResourceURLs"),
                verbs: strings(rule, "verbs"),
            })
            .collect();
        Role { rules }
    }

    /// The role with the rules for `resource` taken out (a role one grant short).
    pub fn without(mut self, resource: &str) -> Role {
        for rule in &mut self.rules {
            rule.resources.retain(|held| held != resource);
        }
        self.rules
            .retain(|rule| !rule.resources.is_empty() || !rule.non_resource_urls.is_empty());
        self
    }

    pub fn allows(&self, request: &Attributes) -> bool {
        self.rules.iter().any(|rule| rule.allows(request))
    }
}

impl Rule {
    fn allows(&self, request: &Attributes) -> bool {
        let any =
            |list: &[String], value: &str| list.iter().any(|item| item == "*" || item == value);
        match request {
            Attributes::Resource {
                verb,
                group,
                resource,
                name,
            } => {
                let resource_matches = self.resources.iter().any(|held| {
                    held == "*"
                        || held == resource
                        || resource
                            .split_once('/')
                            .is_some_and(|(parent, _)| held == &format!("{parent}/*"))
                });
                any(&self.verbs, verb)
                    && any(&self.api_groups, group)
                    && resource_matches
                    && (self.resource_names.is_empty()
                        || name.is_some_and(|name| self.resource_names.iter().any(|n| n == name)))
            }
            Attributes::NonResource { verb, path } => {
                any(&self.verbs, verb)
                    && self
                        .non_resource_urls
                        .iter()
                        .any(|url| match url.strip_suffix('*') {
                            Some(prefix) => path.starts_with(prefix),
                            None => url == path,
                        })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "
kind: ClusterRole
rules:
- apiGroups: ['']
  resources: [pods]
  verbs: [list]
- apiGroups: ['']
  resources: [pods/portforward]
  verbs: [create]
- apiGroups: [apps]
  resources: ['*']
  resourceNames: [vllm]
  verbs: [get]
- nonResourceURLs: [/apis, /apis/*]
  verbs: [get]
";

    fn resource<'a>(verb: &'a str, group: &'a str, resource: &'a str) -> Attributes<'a> {
        Attributes::Resource {
            verb,
            group,
            resource,
            name: None,
        }
    }

    #[test]
    fn rules_allow_what_they_name_and_nothing_else() {
        let role = Role::from_yaml(ROLE);
        assert!(role.allows(&resource("list", "", "pods")));
        assert!(!role.allows(&resource("get", "", "pods")));
        assert!(!role.allows(&resource("list", "apps", "pods")));
        assert!(role.allows(&resource("create", "", "pods/portforward")));
        assert!(!role.allows(&resource("create", "", "pods/exec")));
        assert!(!role.allows(&resource("get", "apps", "deployments")));
        assert!(role.allows(&Attributes::Resource {
            verb: "get",
            group: "apps",
            resource: "deployments",
            name: Some("vllm"),
        }));
        let url = |path| Attributes::NonResource { verb: "get", path };
        assert!(role.allows(&url("/apis")) && role.allows(&url("/apis/apps/v1")));
        assert!(!role.allows(&url("/version")));
        let short = role.without("pods/portforward");
        assert!(!short.allows(&resource("create", "", "pods/portforward")));
        assert!(short.allows(&resource("list", "", "pods")));
    }
}
