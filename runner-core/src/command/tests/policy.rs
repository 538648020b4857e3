//! The input policy on real-looking hostile commands.

use std::path::PathBuf;

use crate::command::parse_perf_command;
use crate::command::policy::{Violation, check};
use crate::settings::Inputs;

fn verdict(cmd: &str, inputs: &Inputs) -> Result<Vec<String>, Violation> {
    let spec = parse_perf_command(cmd).unwrap_or_else(|e| panic!("{cmd:?} did not parse: {e}"));
    check(&spec, inputs)
}

fn refused(cmd: &str, token_part: &str) -> Violation {
    let v = verdict(cmd, &Inputs::default()).expect_err(cmd);
    assert!(
        v.token.contains(token_part),
        "{cmd}: token {:?} should name {token_part:?}",
        v.token
    );
    assert!(!v.fix.is_empty());
    v
}

const SERVE: &str = "vllm bench serve --model meta-llama/Llama-3.1-8B-Instruct --num-prompts 10";

#[test]
fn engine_settings_in_the_environment_are_allowed() {
    for env in [
        "VLLM_USE_V1=1",
        "VLLM_ATTENTION_BACKEND=FLASHINFER",
        "NCCL_P2P_DISABLE=1",
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True",
        "OMP_NUM_THREADS=8",
        "TOKENIZERS_PARALLELISM=false",
        "HF_HUB_OFFLINE=1",
    ] {
        let cmd = format!("{env} {SERVE}");
        assert_eq!(verdict(&cmd, &Inputs::default()), Ok(vec![]), "{cmd}");
    }
}

#[test]
fn loaders_paths_peers_and_secrets_are_refused_by_name() {
    for (env, name) in [
        ("LD_PRELOAD=/x/evil.so", "LD_PRELOAD"),
        ("LD_LIBRARY_PATH=/x", "LD_LIBRARY_PATH"),
        ("PYTHONPATH=/x", "PYTHONPATH"),
        ("PYTHONSTARTUP=/x/s.py", "PYTHONSTARTUP"),
        ("PATH=/x:/usr/bin", "PATH"),
        ("HOME=/x", "HOME"),
        ("HF_ENDPOINT=http://elsewhere", "HF_ENDPOINT"),
        ("HF_TOKEN=abc", "HF_TOKEN"),
        ("https_proxy=http://x:1", "https_proxy"),
        ("CUDA_VISIBLE_DEVICES=3", "CUDA_VISIBLE_DEVICES"),
        ("VLLM_SERVER_DEV_MODE=1", "VLLM_SERVER_DEV_MODE"),
        ("VLLM_PLUGINS=evil", "VLLM_PLUGINS"),
        ("VLLM_CACHE_ROOT=/x", "VLLM_CACHE_ROOT"),
        ("VLLM_PORT=1", "VLLM_PORT"),
        ("VLLM_HOST_IP=10.0.0.1", "VLLM_HOST_IP"),
        ("VLLM_USE_MODELSCOPE=1", "VLLM_USE_MODELSCOPE"),
        (
            "VLLM_LOGGING_CONFIG_PATH=/x.json",
            "VLLM_LOGGING_CONFIG_PATH",
        ),
        ("NCCL_NET_PLUGIN=/x.so", "NCCL_NET_PLUGIN"),
        ("TORCHINDUCTOR_CACHE_DIR=/x", "TORCHINDUCTOR_CACHE_DIR"),
    ] {
        let v = refused(&format!("{env} {SERVE}"), name);
        assert!(v.message.contains(name), "{v}");
    }
    // Through `env` too.
    refused(&format!("env LD_PRELOAD=/x/evil.so {SERVE}"), "LD_PRELOAD");
}

#[test]
fn the_settings_can_widen_the_environment_allow_list_with_a_note() {
    let inputs = Inputs {
        allow_env: vec!["MY_TUNING".into(), "ACME_*".into()],
        ..Inputs::default()
    };
    let notes = verdict(&format!("MY_TUNING=1 ACME_X=2 {SERVE}"), &inputs).unwrap();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].contains("inputs.allow_env"));
    assert!(verdict(&format!("OTHER=1 {SERVE}"), &inputs).is_err());
}

#[test]
fn scripts_stay_inside_the_source_tree() {
    refused(
        "python benchmarks/../../../../x/evil.py --model m/n",
        "benchmarks/../../../../x/evil.py",
    );
    refused(
        "python /x/benchmarks/sub/../../../evil/benchmarks/benchmark_serving.py --model m/n",
        "..",
    );
    // Empty components never parse as an entry point in the first place.
    assert!(parse_perf_command("python benchmarks//benchmark_latency.py --model m/n").is_err());
    refused("python benchmarks/./benchmark_latency.py --model m/n", "./");
    // Where the tree lives on someone's machine does not matter: the runner uses its own.
    assert!(
        verdict(
            "python /vllm-workspace/benchmarks/benchmark_latency.py --model m/n",
            &Inputs::default()
        )
        .is_ok()
    );
}

#[test]
fn dataset_files_come_from_the_roots_only() {
    let base = "vllm bench serve --model m/n --dataset-name sharegpt --dataset-path";
    refused(&format!("{base} /etc/shadow"), "/etc/shadow");
    refused(&format!("{base} ../../.ssh/id_rsa"), "id_rsa");
    refused(&format!("{base} ~/.ssh/id_rsa"), "id_rsa");
    let relative = format!("{base} ShareGPT_V3_unfiltered_cleaned_split.json");
    assert!(verdict(&relative, &Inputs::default()).is_ok());
    let inputs = Inputs {
        dataset_roots: vec![PathBuf::from("/data/sets")],
        ..Inputs::default()
    };
    assert!(verdict(&format!("{base} /data/sets/sharegpt.json"), &inputs).is_ok());
    assert!(verdict(&format!("{base} /data/sets/../../etc/shadow"), &inputs).is_err());
    assert!(verdict(&format!("{base} /data/setsX/a.json"), &inputs).is_err());
}

#[test]
fn local_model_paths_need_a_model_root() {
    let v = refused(
        "vllm bench serve --model /home/u/.ssh --num-prompts 1",
        "/home/u/.ssh",
    );
    assert!(v.fix.contains("inputs.model_roots"), "{v}");
    refused("vllm bench serve --model ./m --num-prompts 1", "./m");
    refused(
        "vllm bench serve --model m/n --tokenizer ../../t",
        "../../t",
    );
    refused(
        "vllm bench serve --model m/n --lora-modules a=/etc/x --num-prompts 1",
        "/etc/x",
    );
    let inputs = Inputs {
        model_roots: vec![PathBuf::from("/models")],
        ..Inputs::default()
    };
    assert!(
        verdict(
            "vllm bench serve --model /models/tiny --num-prompts 1",
            &inputs
        )
        .is_ok()
    );
    assert!(
        verdict(
            "vllm bench serve --model /models/../etc --num-prompts 1",
            &inputs
        )
        .is_err()
    );
}

#[test]
fn flags_that_import_code_are_refused_unless_the_engine_owns_it() {
    refused(
        "vllm bench serve --model m/n --tool-parser-plugin /tmp/p.py",
        "/tmp/p.py",
    );
    refused(
        "vllm bench serve --model m/n --scheduler-cls evil.Scheduler",
        "evil.Scheduler",
    );
    refused(
        "vllm bench serve --model m/n --middleware os.system",
        "os.system",
    );
    assert!(
        verdict(
            "vllm bench serve --model m/n --scheduler-cls vllm.v1.core.sched.async_scheduler.AsyncScheduler",
            &Inputs::default()
        )
        .is_ok()
    );
}

#[test]
fn control_characters_are_refused() {
    refused("vllm bench serve --model 'm/n\u{1b}[2J'", "\\u{1b}");
    refused(
        "VLLM_USE_V1='1\u{0}' vllm bench serve --model m/n",
        "\\u{0}",
    );
}
