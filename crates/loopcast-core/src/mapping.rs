//! The column → role mapping file of wide inputs (and optional role overrides for long
//! inputs).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::{Aggregation, ChannelSpec, CoreError, Frequency, Role};

/// A channel's entry in a mapping: either just its role (`cpu = "target"`) or a table
/// (`requests = { role = "target", aggregation = "sum" }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChannelEntry {
    /// Only the role; aggregation and future knowledge take the role's defaults.
    Role(Role),
    /// Role plus explicit settings.
    Detailed {
        /// What the channel is to the model.
        role: Role,
        /// Aggregation within a grid cell; defaults by role.
        #[serde(default)]
        aggregation: Option<Aggregation>,
        /// Whether future values are known; defaults to true for actions, false otherwise.
        #[serde(default)]
        known_future: Option<bool>,
    },
}

/// Which column holds what, and the role of every channel.
///
/// ```toml
/// series_id = "host"          # optional: defaults to series_id / unique_id / item_id
/// timestamp = "ts"            # optional: defaults to timestamp / ds
/// frequency = "5m"            # optional: inferred when absent
///
/// [channels]
/// cpu_util = "target"
/// requests = { role = "target", aggregation = "sum" }
/// replicas = "action"
/// temperature = { role = "covariate", known_future = true }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelMapping {
    /// Column holding the series identifier, when it is not one of the standard names.
    #[serde(default)]
    pub series_id: Option<String>,
    /// Column holding the timestamp, when it is not one of the standard names.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// The grid step; inferred from the data when absent.
    #[serde(default)]
    pub frequency: Option<Frequency>,
    /// Channel name → role and settings.
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelEntry>,
}

impl ChannelMapping {
    /// Parses a mapping from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, CoreError> {
        toml_from_str(text)
    }

    /// Parses a mapping from JSON text.
    pub fn from_json(text: &str) -> Result<Self, CoreError> {
        serde_json_from_str(text)
    }

    /// The spec of channel `name`, if the mapping lists it.
    pub fn spec(&self, name: &str) -> Option<ChannelSpec> {
        self.channels.get(name).map(|entry| match *entry {
            ChannelEntry::Role(role) => ChannelSpec::new(name, role),
            ChannelEntry::Detailed { role, aggregation, known_future } => {
                let mut spec = ChannelSpec::new(name, role);
                if let Some(aggregation) = aggregation {
                    spec.aggregation = aggregation;
                }
                spec.known_future = role == Role::Action || known_future.unwrap_or(spec.known_future);
                spec
            }
        })
    }

    /// Specs of every mapped channel, in name order.
    pub fn specs(&self) -> Vec<ChannelSpec> {
        self.channels.keys().filter_map(|name| self.spec(name)).collect()
    }
}

fn toml_from_str(text: &str) -> Result<ChannelMapping, CoreError> {
    toml::from_str(text).map_err(|e| CoreError::InvalidMapping(e.to_string()))
}

fn serde_json_from_str(text: &str) -> Result<ChannelMapping, CoreError> {
    serde_json::from_str(text).map_err(|e| CoreError::InvalidMapping(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        timestamp = "ts"
        frequency = "5m"
        [channels]
        cpu_util = "target"
        requests = { role = "target", aggregation = "sum" }
        replicas = "action"
        temperature = { role = "covariate", known_future = true }
    "#;

    #[test]
    fn reads_short_and_detailed_entries() {
        let m = ChannelMapping::from_toml(EXAMPLE).unwrap();
        assert_eq!(m.timestamp.as_deref(), Some("ts"));
        assert_eq!(m.frequency, Some(Frequency::minutes(5)));
        let requests = m.spec("requests").unwrap();
        assert_eq!((requests.role, requests.aggregation), (Role::Target, Aggregation::Sum));
        assert!(m.spec("temperature").unwrap().known_future);
        assert!(m.spec("replicas").unwrap().known_future);
        assert_eq!(m.specs().len(), 4);
        assert!(m.spec("memory").is_none());
    }

    #[test]
    fn json_and_toml_agree() {
        let json = r#"{"timestamp":"ts","frequency":"5m","channels":{
            "cpu_util":"target","requests":{"role":"target","aggregation":"sum"},
            "replicas":"action","temperature":{"role":"covariate","known_future":true}}}"#;
        assert_eq!(ChannelMapping::from_json(json).unwrap(), ChannelMapping::from_toml(EXAMPLE).unwrap());
    }

    #[test]
    fn rejects_unknown_roles_and_keys() {
        let err = ChannelMapping::from_toml("[channels]\ncpu = \"output\"").unwrap_err();
        assert!(matches!(err, CoreError::InvalidMapping(_)), "{err}");
        let err = ChannelMapping::from_toml("colums = 3").unwrap_err();
        assert!(err.to_string().contains("colums"), "{err}");
    }
}
