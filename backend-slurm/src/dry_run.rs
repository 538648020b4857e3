//! `plan COMMIT --backend slurm`: the exact allocation and job-step commands a build's jobs
//! would run, without contacting the cluster (`<ALLOC>` stands for the allocation's job id,
//! placeholders such as `{PORT}` are filled when the step starts).

use std::collections::BTreeMap;

use runner_core::build::BuildSpec;
use runner_core::plan::StepPlan;
use serde_json::{Value, json};

use crate::alloc::{JOB_PREFIX, gres, salloc_args};
use crate::config::SlurmConfig;
use crate::execute::srun_args;

/// What the backend would run for `build`'s jobs of `step`.
pub fn dry_run(cfg: &SlurmConfig, build: &BuildSpec, step: &StepPlan) -> Value {
    let mut labels = BTreeMap::new();
    labels.insert("run-id".to_string(), "<RUN_ID>".to_string());
    labels.insert("task".to_string(), build.commit.clone());
    let mut salloc = vec![cfg.program("salloc").display().to_string()];
    salloc.extend(salloc_args(cfg, &step.gpu, &labels));
    let srun = |role: &str, argv: &[String]| -> Vec<String> {
        let mut a = vec![cfg.program("srun").display().to_string()];
        a.extend(srun_args(
            cfg,
            "<ALLOC>",
            &format!("{JOB_PREFIX}.{role}.<N>"),
        ));
        a.extend(argv.iter().cloned());
        a
    };
    let mut steps = serde_json::Map::new();
    if let Some(s) = &step.server {
        steps.insert("server".into(), json!(srun("server", &s.argv)));
    }
    if let Some(w) = &step.warmup {
        steps.insert("warmup".into(), json!(srun("warmup", &w.argv)));
    }
    steps.insert("client".into(), json!(srun("client", &step.client.argv)));
    json!({
        "allocation": salloc,
        "gres": gres(cfg, &step.gpu),
        "steps": steps,
        "environment": {
            "venv": cfg.env.venv_dir(&build.identity).display().to_string(),
            "find_links": cfg.env.find_links,
        },
        "release": [cfg.program("scancel").display().to_string(), "<ALLOC>".to_string()],
    })
}
