//! What `auto` says of a task: each backend's verdict, the one chosen, and their JSON.

/// Whether one backend can take a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The backend.
    pub backend: &'static str,
    /// `Ok`: it can; `Err`: why not.
    pub outcome: Result<(), String>,
}

/// Where a task goes and what each backend said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The index of the backend that takes it (in [`Router`]'s order), if any.
    pub(super) chosen: Option<usize>,
    /// One verdict per backend asked, in order (all of them, or up to the chosen one).
    pub verdicts: Vec<Verdict>,
}

impl Route {
    /// The backend that takes the task.
    pub fn backend(&self) -> Option<&'static str> {
        self.chosen.map(|i| self.verdicts[i].backend)
    }

    /// One line per backend: which takes the task and why each other does not.
    pub fn lines(&self) -> Vec<String> {
        let first = self.backend();
        self.verdicts
            .iter()
            .enumerate()
            .map(|(i, v)| match &v.outcome {
                Ok(()) if Some(i) == self.chosen => format!("{}: takes it", v.backend),
                Ok(()) => format!(
                    "{}: could take it, but {} comes first in auto.order",
                    v.backend,
                    first.unwrap_or("another")
                ),
                Err(why) => format!("{}: {why}", v.backend),
            })
            .collect()
    }

    /// As JSON: the backend that takes it (`null`: none) and each backend's verdict.
    pub fn to_json(&self) -> RouteJson {
        RouteJson {
            backend: self.backend().map(str::to_string),
            backends: self
                .verdicts
                .iter()
                .map(|v| RouteVerdict {
                    name: v.backend.to_string(),
                    can_take: v.outcome.is_ok(),
                    reason: v.outcome.as_ref().err().cloned(),
                })
                .collect(),
        }
    }

    /// Why no backend can take the task: every backend's reason.
    pub fn why_none(&self) -> String {
        let reasons: Vec<String> = self.lines();
        format!("no backend can take it here ({})", reasons.join("; "))
    }
}

/// Where `auto` sends a task, as the JSON outputs give it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct RouteJson {
    /// The backend that takes the task (`null`: none can here).
    pub backend: Option<String>,
    /// Every backend of `auto.order`, in order, with its verdict.
    pub backends: Vec<RouteVerdict>,
}

/// One backend's verdict on a task.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct RouteVerdict {
    /// The backend.
    pub name: String,
    /// Whether it could take the task.
    pub can_take: bool,
    /// Why not, when it cannot.
    pub reason: Option<String>,
}
