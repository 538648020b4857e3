"""The `modal` SDK objects of perf-runner's Modal shim (see modal_shim.py, which imports this
file from its own directory): image recipes applied as SDK calls, lazily built images described
without network, `Sandbox.create` arguments, and the dry run that builds them all.
"""

import inspect
import os
import typing

class ShimError(Exception):
    """A condition the shim itself detects."""


class BadRequest(ShimError):
    """The request line is not what this shim understands."""


for _c in (ShimError, BadRequest):
    _c.__module__ = "perf_runner"


# ---------------------------------------------------------------- images


def base_image(modal, base):
    kind = base.get("kind")
    if kind == "debian_slim":
        return modal.Image.debian_slim(python_version=base["python_version"])
    if kind == "registry":
        return modal.Image.from_registry(base["reference"])
    if kind == "from_id":
        return modal.Image.from_id(base["image_id"])
    raise BadRequest(f"unknown image base {kind!r}")


def apply_ops(image, ops):
    for op in ops or []:
        kind = op.get("op")
        if kind == "entrypoint":
            image = image.entrypoint(list(op["args"]))
        elif kind == "uv_pip_install":
            image = image.uv_pip_install(
                *op["packages"], extra_index_url=op.get("extra_index_url"), pre=bool(op.get("pre"))
            )
        elif kind == "add_local_file":
            image = image.add_local_file(op["local_path"], op["remote_path"], copy=bool(op.get("copy")))
        elif kind == "apt_install":
            image = image.apt_install(*op["packages"])
        elif kind == "run_commands":
            image = image.run_commands(*op["commands"])
        elif kind == "dockerfile_commands":
            image = image.dockerfile_commands(list(op["commands"]))
        else:
            raise BadRequest(f"unknown image op {kind!r}")
    return image


def builder_version(requested):
    from modal._image import ImageBuilderVersion
    from modal.config import config

    version = requested or os.environ.get("MODAL_IMAGE_BUILDER_VERSION") or config.get("image_builder_version")
    if version:
        return version
    return max(v for v in typing.get_args(ImageBuilderVersion) if v != "PREVIEW")


def raw(obj):
    from modal._utils.async_utils import synchronizer

    return synchronizer._translate_in(obj)


def describe_image(image, version):
    """The layers of a lazily built image as the SDK recorded them (no network)."""
    layers = []

    def walk(obj, depth):
        if depth > 64:
            return
        try:
            found = inspect.getclosurevars(obj._load).nonlocals
        except Exception:
            found = {}
        for base in (found.get("base_images") or {}).values():
            walk(base, depth + 1)
        fn = found.get("dockerfile_function")
        method = fn.__qualname__.split(".")[1] if fn is not None and "." in fn.__qualname__ else None
        layer = {"method": method or obj._rep.split("(")[0], "commands": [], "context_files": []}
        if fn is not None:
            spec = fn(version)
            layer["commands"] = list(spec.commands)
            layer["context_files"] = sorted(spec.context_files)
        layers.append(layer)

    walk(raw(image), 0)
    return layers


# ---------------------------------------------------------------- sandboxes


def sandbox_kwargs(modal, app, image, spec):
    kwargs = dict(
        app=app,
        image=image,
        gpu=spec["gpu"],
        timeout=int(spec["timeout_s"]),
        volumes={p: modal.Volume.from_name(n, create_if_missing=True) for p, n in spec["volumes"].items()},
        secrets=[modal.Secret.from_name(n) for n in spec["secrets"]],
        env=dict(spec["env"]),
    )
    if spec.get("tags"):
        kwargs["tags"] = dict(spec["tags"])
    if spec.get("cpu"):
        kwargs["cpu"] = float(spec["cpu"])
    if spec.get("memory_mib"):
        kwargs["memory"] = int(spec["memory_mib"])
    if spec.get("encrypted_ports"):
        kwargs["encrypted_ports"] = [int(p) for p in spec["encrypted_ports"]]
    return kwargs



def dry_run(modal, req):
    from google.protobuf.json_format import MessageToDict
    from modal._resources import convert_fn_config_to_resources_config
    from modal.sandbox._common import SandboxCreateArgs, SandboxCreateCommon

    version = builder_version(req.get("builder_version"))
    prep, run_req = req["prepare"], req["run"]
    image = apply_ops(base_image(modal, prep["image"]["base"]), prep["image"]["ops"])
    engine_layers = describe_image(image, version)
    if prep.get("patch"):
        image = apply_ops(image, prep["patch"])
    image = apply_ops(image, run_req["image"]["ops"])
    spec = run_req["sandbox"]
    kwargs = sandbox_kwargs(modal, None, image, spec)
    volumes = {p: raw(v) for p, v in kwargs["volumes"].items()}
    secrets = [raw(s) for s in kwargs["secrets"]]
    resources = convert_fn_config_to_resources_config(
        cpu=kwargs.get("cpu"), memory=kwargs.get("memory"), gpu=kwargs["gpu"], ephemeral_disk=None
    )
    args = SandboxCreateArgs(
        args=("sleep", "infinity"),
        image=raw(image),
        secrets=secrets,
        env=kwargs["env"],
        timeout=kwargs["timeout"],
        gpu=kwargs["gpu"],
        cpu=kwargs.get("cpu"),
        memory=kwargs.get("memory"),
        volumes=volumes,
        tags=kwargs.get("tags"),
        encrypted_ports=kwargs.get("encrypted_ports", ()),
    )
    common = SandboxCreateCommon(args, secrets=secrets)  # the SDK's own validation
    plan = {
        "sdk": {"modal": modal.__version__, "builder_version": version},
        "image": {"layers": describe_image(image, version), "engine_layers": engine_layers},
        "gpu": kwargs["gpu"],
        "gpu_config": MessageToDict(resources.gpu_config),
        "volumes": {p: v._name for p, v in volumes.items()},
        "secrets": [s._name for s in secrets],
        "timeout": common.timeout,
        "env": kwargs["env"],
        "uploads": run_req["uploads"],
        "processes": req.get("processes") or {},
        "encrypted_ports": list(kwargs.get("encrypted_ports", ())),
    }
    # The Sandbox definition the SDK would send, with placeholder ids on these local objects.
    try:
        raw(image)._hydrate("im-dry-run", None, None)
        for i, s in enumerate(secrets):
            s._hydrate(f"st-dry-run-{i}", None, None)
        for i, v in enumerate(volumes.values()):
            v._hydrate(f"vo-dry-run-{i}", None, None)
        plan["sandbox_definition"] = MessageToDict(common.definition(cloud_bucket_mounts=[]))
    except Exception as exc:  # internal API: report instead of failing the plan
        plan["sandbox_definition"] = None
        plan["definition_error"] = f"{type(exc).__name__}: {exc}"
    return plan


