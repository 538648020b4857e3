//! Injected faults and their vLLM-like texts (Python tracebacks on stderr, Python's exit codes:
//! 1 for an exception, 2 for argparse).

use crate::args::Args;
use crate::logs::{err, log_line};
use perf_runner_tests::standin::{Fault, StandinConfig};

const SP: &str = "/usr/local/lib/python3.12/site-packages";

/// What a run looks like from a traceback's point of view.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The outermost traceback frames (`File "/usr/local/bin/vllm", line 8, in <module>` …).
    pub top: String,
    /// The model being served or benchmarked.
    pub model: String,
    /// Old vLLM log format.
    pub old: bool,
}

impl Ctx {
    /// The context of an entry point: `module` for `python -m`, `script` for a benchmark script,
    /// else the `vllm` console script.
    pub fn new(entry: &crate::argv::Entry, model: &str, old: bool) -> Ctx {
        use crate::argv::Entry;
        let top = match entry {
            Entry::Module(m) => format!(
                "  File \"<frozen runpy>\", line 198, in _run_module_as_main\n  \
                 File \"<frozen runpy>\", line 88, in _run_code\n  \
                 File \"{SP}/{}.py\", line 1495, in <module>\n    uvloop.run(run_server(args))",
                m.replace('.', "/")
            ),
            Entry::Script(path) => format!(
                "  File \"{path}\", line 733, in <module>\n    main(args)"
            ),
            Entry::Cli => "  File \"/usr/local/bin/vllm\", line 8, in <module>\n    sys.exit(main())\n  \
                 File \"/usr/local/lib/python3.12/site-packages/vllm/entrypoints/cli/main.py\", line 54, in main\n    \
                 args.dispatch_function(args)"
                .to_string(),
        };
        Ctx {
            top,
            model: model.to_string(),
            old,
        }
    }
}

/// How an engine start ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// No fault: go on.
    Continue,
    /// The fault was printed; exit with this code.
    Exit(i32),
    /// Never become ready; `unkillable` ignores SIGTERM/SIGINT.
    Hang { unkillable: bool },
}

/// `unrecognized_arg`: argparse rejects the last flag (or `--foo`); exit code 2.
pub fn argparse_fault(cfg: &StandinConfig, args: &Args) -> Option<i32> {
    if cfg.fault != Some(Fault::UnrecognizedArg) {
        return None;
    }
    let flag = args.last_flag().unwrap_or_else(|| "--foo".to_string());
    err(&args.usage());
    err(&format!(
        "{}: error: unrecognized arguments: {flag}",
        args.prog
    ));
    Some(2)
}

/// `transient_once`: true (after printing the failure) on the first invocation per state dir.
pub fn transient_once(cfg: &StandinConfig, ctx: &Ctx) -> bool {
    if cfg.fault != Some(Fault::TransientOnce) {
        return false;
    }
    let dir = cfg.state_dir_or_temp();
    let _ = std::fs::create_dir_all(&dir);
    let marker = dir.join("standin-transient-once.marker");
    let first = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .is_ok();
    if first {
        let url = format!(
            "https://huggingface.co/{}/resolve/main/config.json",
            ctx.model
        );
        err(&format!(
            "Traceback (most recent call last):\n{top}\n  \
             File \"{SP}/huggingface_hub/file_download.py\", line 1484, in _get_metadata_or_catch_error\n    \
             metadata = get_hf_file_metadata(\n  \
             File \"{SP}/requests/adapters.py\", line 682, in send\n    \
             raise ConnectionError(err, request=request)\n\
             requests.exceptions.ConnectionError: ('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))\n\
             (while fetching {url})",
            top = ctx.top
        ));
    }
    first
}

/// Engine start faults (server and offline benchmarks), printed after the first log lines.
pub fn engine_start(cfg: &StandinConfig, ctx: &Ctx) -> Start {
    if transient_once(cfg, ctx) {
        return Start::Exit(1);
    }
    let top = &ctx.top;
    match cfg.fault {
        Some(Fault::CrashAtStart) => {
            let e = |m: &str| log_line("ERROR", "core.py:586", m, ctx.old);
            err(&e("EngineCore failed to start."));
            err(&e("Traceback (most recent call last):"));
            err(&e(&format!(
                "  File \"{SP}/vllm/v1/engine/core.py\", line 577, in run_engine_core"
            )));
            err(&e("    engine_core = EngineCoreProc(*args, **kwargs)"));
            err(&e(
                "RuntimeError: CUDA error: no kernel image is available for execution on the device",
            ));
            err(&format!(
                "Traceback (most recent call last):\n{top}\n  \
                 File \"{SP}/vllm/v1/engine/utils.py\", line 703, in wait_for_engine_startup\n    \
                 raise RuntimeError(\"Engine core initialization failed. \"\n\
                 RuntimeError: Engine core initialization failed. See root cause above. \
                 Failed core proc(s): {{'EngineCore_0': 1}}"
            ));
            Start::Exit(1)
        }
        Some(Fault::UnsupportedArch) => {
            err(&format!(
                "Traceback (most recent call last):\n{top}\n  \
                 File \"{SP}/vllm/model_executor/models/registry.py\", line 390, in _raise_for_unsupported\n    \
                 raise ValueError(\n\
                 ValueError: Model architectures ['FooForCausalLM'] are not supported for now. \
                 Supported architectures: ['AquilaForCausalLM', 'BaiChuanForCausalLM', \
                 'BloomForCausalLM', 'DeepseekV2ForCausalLM', 'FalconForCausalLM', \
                 'GemmaForCausalLM', 'GPT2LMHeadModel', 'LlamaForCausalLM', 'MistralForCausalLM', \
                 'MixtralForCausalLM', 'OPTForCausalLM', 'Qwen2ForCausalLM']"
            ));
            Start::Exit(1)
        }
        Some(Fault::Oom) => {
            err(&format!(
                "Traceback (most recent call last):\n{top}\n  \
                 File \"{SP}/vllm/worker/model_runner.py\", line 1050, in load_model\n    \
                 self.model = get_model(vllm_config=self.vllm_config)\n  \
                 File \"{SP}/torch/nn/modules/module.py\", line 1340, in to\n    \
                 return self._apply(convert)\n\
                 torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a \
                 total capacity of 79.10 GiB of which 1.06 GiB is free. Process 3127 has 78.03 GiB \
                 memory in use. Of the allocated memory 76.52 GiB is allocated by PyTorch, and \
                 512.00 MiB is reserved by PyTorch but unallocated. If reserved but unallocated \
                 memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to \
                 avoid fragmentation.  See documentation for Memory Management  \
                 (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"
            ));
            Start::Exit(1)
        }
        Some(Fault::Hang) => Start::Hang { unkillable: false },
        Some(Fault::HangUnkillable) => Start::Hang { unkillable: true },
        _ => Start::Continue,
    }
}

/// `crash_mid_run`: the engine dies (CUDA illegal memory access); the caller exits 1.
pub fn crash_mid_run(ctx: &Ctx) {
    let e = |m: &str| log_line("ERROR", "core.py:634", m, ctx.old);
    err(&e("EngineCore encountered a fatal error."));
    err(&e("Traceback (most recent call last):"));
    err(&e(&format!(
        "  File \"{SP}/vllm/v1/engine/core.py\", line 625, in run_engine_core"
    )));
    err(&e("    engine_core.run_busy_loop()"));
    err(&e(
        "RuntimeError: CUDA error: an illegal memory access was encountered",
    ));
    err(&e(
        "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might be incorrect.",
    ));
    err(&e("For debugging consider passing CUDA_LAUNCH_BLOCKING=1"));
    let a = log_line(
        "ERROR",
        "async_llm.py:420",
        "AsyncLLM output_handler failed.",
        ctx.old,
    );
    err(&a);
    err(
        "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.",
    );
}

/// `client_crash`: the benchmark client dies with an aiohttp payload error; the caller exits 1.
pub fn client_crash(ctx: &Ctx) {
    err(&format!(
        "Traceback (most recent call last):\n{}\n  \
         File \"{SP}/vllm/benchmarks/serve.py\", line 620, in benchmark\n    \
         outputs: list[RequestFuncOutput] = await asyncio.gather(*tasks)\n  \
         File \"{SP}/vllm/benchmarks/lib/endpoint_request_func.py\", line 150, in async_request_openai_completions\n    \
         async for chunk_bytes in response.content:\n  \
         File \"{SP}/aiohttp/streams.py\", line 52, in __anext__\n    \
         rv = await self.read_func()\n\
         aiohttp.client_exceptions.ClientPayloadError: Response payload is not completed: \
         <TransferEncodingError: 400, message='Not enough data for satisfy transfer length header.'>",
        ctx.top
    ));
}

/// The initial test request failed (nothing listens, HTTP error …): vLLM's `ValueError` with
/// the request's error text; the caller exits 1.
pub fn initial_run_failed(ctx: &Ctx, error: &str) {
    err(&format!(
        "Traceback (most recent call last):\n{}\n  \
         File \"{SP}/vllm/benchmarks/serve.py\", line 364, in benchmark\n    \
         raise ValueError(\n\
         ValueError: Initial test run failed - Please make sure benchmark arguments are correctly \
         specified. Error: {error}",
        ctx.top
    ));
}
