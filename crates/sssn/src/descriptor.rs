//! What a system offers: [`ServiceDescriptor`] and [`ServiceMethod`] (v1 shapes).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One service a system exposes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceMethod {
    /// Service name (what `find_systems(capability)` matches).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Parameter name → description.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

impl ServiceMethod {
    /// A service with a name and description.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            parameters: BTreeMap::new(),
        }
    }

    /// Adds a parameter.
    #[must_use]
    pub fn param(mut self, name: impl Into<String>, description: impl Into<String>) -> Self {
        self.parameters.insert(name.into(), description.into());
        self
    }
}

/// A system's identity, services, and the channels it reads and writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDescriptor {
    /// System id.
    pub system_id: String,
    /// Human name.
    pub system_name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Exposed services.
    #[serde(default)]
    pub services: Vec<ServiceMethod>,
    /// Channel ids the system reads.
    #[serde(default)]
    pub channels_read: Vec<String>,
    /// Channel ids the system writes.
    #[serde(default)]
    pub channels_write: Vec<String>,
}

impl ServiceDescriptor {
    /// A descriptor with id and name.
    pub fn new(system_id: impl Into<String>, system_name: impl Into<String>) -> Self {
        Self {
            system_id: system_id.into(),
            system_name: system_name.into(),
            ..Self::default()
        }
    }

    /// Whether the system exposes a service named `capability`.
    pub fn has_service(&self, capability: &str) -> bool {
        self.services.iter().any(|s| s.name == capability)
    }
}
