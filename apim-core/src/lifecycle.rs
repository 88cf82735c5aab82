//! The API lifecycle state machine, exactly as WSO2 API-M (DESIGN §4).

use serde::{Deserialize, Serialize};

use crate::ApimError;

/// Lifecycle state of an API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LifecycleState {
    /// Being designed; not visible in the Developer Portal.
    #[default]
    Created,
    /// Deployed as a prototype: callable without subscription.
    Prototyped,
    /// Live.
    Published,
    /// Temporarily blocked: the gateway answers 503 700700.
    Blocked,
    /// No new subscriptions.
    Deprecated,
    /// Gone for good.
    Retired,
}

/// A lifecycle action, with WSO2's action names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LifecycleAction {
    /// "Publish"
    #[serde(rename = "Publish")]
    Publish,
    /// "Deploy as a Prototype"
    #[serde(rename = "Deploy as a Prototype")]
    DeployAsPrototype,
    /// "Demote to Created"
    #[serde(rename = "Demote to Created")]
    DemoteToCreated,
    /// "Block"
    #[serde(rename = "Block")]
    Block,
    /// "Deprecate"
    #[serde(rename = "Deprecate")]
    Deprecate,
    /// "Re-Publish"
    #[serde(rename = "Re-Publish")]
    RePublish,
    /// "Retire"
    #[serde(rename = "Retire")]
    Retire,
}

impl LifecycleAction {
    /// All actions.
    pub const ALL: [LifecycleAction; 7] = [
        LifecycleAction::Publish,
        LifecycleAction::DeployAsPrototype,
        LifecycleAction::DemoteToCreated,
        LifecycleAction::Block,
        LifecycleAction::Deprecate,
        LifecycleAction::RePublish,
        LifecycleAction::Retire,
    ];

    /// WSO2's display name of the action (`Deploy as a Prototype`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleAction::Publish => "Publish",
            LifecycleAction::DeployAsPrototype => "Deploy as a Prototype",
            LifecycleAction::DemoteToCreated => "Demote to Created",
            LifecycleAction::Block => "Block",
            LifecycleAction::Deprecate => "Deprecate",
            LifecycleAction::RePublish => "Re-Publish",
            LifecycleAction::Retire => "Retire",
        }
    }

    /// Parses WSO2's action name; the error lists the valid ones.
    pub fn parse(s: &str) -> Result<Self, ApimError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|a| a.as_str()).collect();
                ApimError::validation(
                    "action",
                    format!("unknown lifecycle action '{s}'; expected one of {names:?}"),
                )
            })
    }
}

impl LifecycleState {
    /// Upper-case name as in WSO2 (`PUBLISHED`).
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleState::Created => "CREATED",
            LifecycleState::Prototyped => "PROTOTYPED",
            LifecycleState::Published => "PUBLISHED",
            LifecycleState::Blocked => "BLOCKED",
            LifecycleState::Deprecated => "DEPRECATED",
            LifecycleState::Retired => "RETIRED",
        }
    }

    /// The actions allowed from this state, in WSO2's order.
    pub fn allowed_actions(self) -> &'static [LifecycleAction] {
        use LifecycleAction::*;
        match self {
            LifecycleState::Created => &[Publish, DeployAsPrototype],
            LifecycleState::Prototyped => &[Publish, DemoteToCreated, DeployAsPrototype],
            LifecycleState::Published => &[
                Block,
                DeployAsPrototype,
                DemoteToCreated,
                Deprecate,
                Publish,
            ],
            LifecycleState::Blocked => &[Deprecate, RePublish],
            LifecycleState::Deprecated => &[Retire],
            LifecycleState::Retired => &[],
        }
    }

    /// Applies `action`; a refused transition is a 409 naming the state and the allowed actions.
    pub fn apply(self, action: LifecycleAction) -> Result<LifecycleState, ApimError> {
        if !self.allowed_actions().contains(&action) {
            let allowed: Vec<_> = self.allowed_actions().iter().map(|a| a.as_str()).collect();
            return Err(ApimError::Conflict(format!(
                "lifecycle action '{}' is not allowed in state {}; allowed: {allowed:?}",
                action.as_str(),
                self.as_str()
            )));
        }
        Ok(match action {
            LifecycleAction::Publish | LifecycleAction::RePublish => LifecycleState::Published,
            LifecycleAction::DeployAsPrototype => LifecycleState::Prototyped,
            LifecycleAction::DemoteToCreated => LifecycleState::Created,
            LifecycleAction::Block => LifecycleState::Blocked,
            LifecycleAction::Deprecate => LifecycleState::Deprecated,
            LifecycleAction::Retire => LifecycleState::Retired,
        })
    }

    /// Whether the gateway serves calls in this state (BLOCKED is served as 503 700700).
    pub fn is_callable(self) -> bool {
        matches!(
            self,
            LifecycleState::Published | LifecycleState::Prototyped | LifecycleState::Deprecated
        )
    }
}

#[cfg(test)]
mod tests {
    use super::LifecycleAction::*;
    use super::LifecycleState::*;
    use super::*;

    const STATES: [LifecycleState; 6] =
        [Created, Prototyped, Published, Blocked, Deprecated, Retired];

    /// The exact table of DESIGN §4.
    const ALLOWED: &[(LifecycleState, LifecycleAction, LifecycleState)] = &[
        (Created, Publish, Published),
        (Created, DeployAsPrototype, Prototyped),
        (Prototyped, Publish, Published),
        (Prototyped, DemoteToCreated, Created),
        (Prototyped, DeployAsPrototype, Prototyped),
        (Published, Block, Blocked),
        (Published, DeployAsPrototype, Prototyped),
        (Published, DemoteToCreated, Created),
        (Published, Deprecate, Deprecated),
        (Published, Publish, Published),
        (Blocked, Deprecate, Deprecated),
        (Blocked, RePublish, Published),
        (Deprecated, Retire, Retired),
    ];

    #[test]
    fn every_allowed_transition() {
        for &(from, action, to) in ALLOWED {
            assert_eq!(from.apply(action).unwrap(), to, "{from:?} --{action:?}-->");
        }
    }

    #[test]
    fn every_other_transition_is_refused() {
        let mut refused = 0;
        for from in STATES {
            for action in LifecycleAction::ALL {
                if ALLOWED.iter().any(|&(f, a, _)| f == from && a == action) {
                    continue;
                }
                match from.apply(action) {
                    Err(ApimError::Conflict(msg)) => {
                        assert!(
                            msg.contains(from.as_str()) && msg.contains(action.as_str()),
                            "{msg}"
                        );
                        refused += 1;
                    }
                    other => panic!("{from:?} --{action:?}--> should be refused, got {other:?}"),
                }
            }
        }
        assert_eq!(refused, 6 * 7 - ALLOWED.len());
    }

    #[test]
    fn action_names() {
        assert_eq!(
            LifecycleAction::parse("Deploy as a Prototype").unwrap(),
            DeployAsPrototype
        );
        assert!(matches!(
            LifecycleAction::parse("Destroy"),
            Err(ApimError::Validation { .. })
        ));
        assert_eq!(serde_json::to_string(&Published).unwrap(), "\"PUBLISHED\"");
    }
}
