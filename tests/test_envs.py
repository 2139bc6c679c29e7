"""Per-rule conda envs, checked statically (conda itself is not available here).

For every rule: its ``conda:`` env file, the ``ctith`` subcommands its shell runs, the
ctith modules those subcommands import (transitively, lazy imports included), and the
third-party packages those modules import. Each package must be in the rule's env, at
the version pyproject.toml pins.
"""

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from ctith import cli

SRC = REPO / "src" / "ctith"
# import name -> (names accepted in an env file, name in pyproject.toml)
PACKAGES = {
    "numpy": ({"numpy"}, "numpy"), "pandas": ({"pandas"}, "pandas"), "scipy": ({"scipy"}, "scipy"),
    "SimpleITK": ({"simpleitk"}, "simpleitk"), "pydicom": ({"pydicom"}, "pydicom"),
    "radiomics": ({"pyradiomics-bhklab"}, "pyradiomics-bhklab"), "numba": ({"numba"}, "numba"),
    "skimage": ({"scikit-image"}, "scikit-image"), "sklearn": ({"scikit-learn"}, "scikit-learn"),
    "imblearn": ({"imbalanced-learn"}, "imbalanced-learn"), "optuna": ({"optuna"}, "optuna"),
    "sksurv": ({"scikit-survival"}, "scikit-survival"), "neuroCombat": ({"neurocombat"}, "neurocombat"),
    "pingouin": ({"pingouin"}, "pingouin"), "matplotlib": ({"matplotlib", "matplotlib-base"}, "matplotlib"),
    "mpl_toolkits": ({"matplotlib", "matplotlib-base"}, "matplotlib"),  # ships with matplotlib
    "yaml": ({"pyyaml"}, "pyyaml"), "jsonschema": ({"jsonschema"}, "jsonschema"), "torch": ({"torch"}, "torch"),
    "captum": ({"captum"}, "captum"), "shap": ({"shap"}, "shap"), "joblib": ({"joblib"}, "joblib"),
    "skops": ({"skops"}, "skops"),
    "dcurves": ({"dcurves"}, "dcurves"), "lifelines": ({"lifelines"}, "lifelines"),
    "statsmodels": ({"statsmodels"}, "statsmodels"), "PIL": ({"pillow"}, "pillow"),
}


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def pyproject_pins() -> dict:
    text = (REPO / "pyproject.toml").read_text()
    deps = re.search(r"dependencies = \[(.*?)\]", text, re.S).group(1)
    return {_norm(n): v for n, v in re.findall(r'"([A-Za-z0-9_.\-]+)==([^"]+)"', deps)}


def env_packages(path: Path) -> dict:
    """name -> version of an env file's conda and pip dependencies."""
    spec = yaml.safe_load(path.read_text())
    out = {}
    for dep in spec["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            m = re.match(r"([A-Za-z0-9_.\-]+)\s*(?:==?|>=)?\s*([^\s#]*)", item)
            out[_norm(m.group(1))] = m.group(2)
    return out


def rules() -> dict:
    """rule -> (env file, [ctith subcommands])."""
    found = {}
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=rule \w+:)", smk.read_text()):
            m = re.match(r"rule (\w+):", block.strip())
            if not m:
                continue
            env = re.search(r'conda:\s*\n\s*"([^"]+)"', block)
            subs = re.findall(r"ctith ([a-z][a-z0-9-]*)", block)
            found[m.group(1)] = ((smk.parent / env.group(1)).resolve() if env else None, subs)
    return found


def _imports(tree, package: tuple = ()) -> tuple[set, set]:
    """(ctith modules, third-party top-level modules) imported anywhere in an AST.
    ``package``: the importing module's package below ``ctith`` (``("cli",)`` inside
    ``ctith/cli/``); ctith modules come as dotted names below ``ctith`` (``survival.cox``)."""
    local, third = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1
                if up > len(package):
                    continue
                base = package[:len(package) - up] + tuple(node.module.split(".") if node.module else ())
            elif node.module.split(".")[0] == "ctith":
                base = tuple(node.module.split(".")[1:])
            else:
                third.add(node.module.split(".")[0])
                continue
            local.add(".".join(base))
            local.update(".".join(base + (a.name,)) for a in node.names)  # a name may be a submodule
        elif isinstance(node, ast.Import):
            third.update(a.name.split(".")[0] for a in node.names)
    return {m for m in local if m and _source(m)}, {m for m in third if m not in sys.stdlib_module_names
                                                     and m not in ("__future__", "ctith")}


def _source(module: str) -> Path | None:
    """The file of a ctith module given below ``ctith`` (``survival.cox``), or None."""
    path = SRC.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def module_closure(modules: set) -> set:
    """Third-party packages imported by ctith modules and everything they import."""
    seen, todo, third = set(), list(modules), set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        source = _source(mod)
        package = tuple(mod.split(".")) if source.name == "__init__.py" else tuple(mod.split(".")[:-1])
        local, ext = _imports(ast.parse(source.read_text()), package)
        third |= ext
        todo += local
    return third


def subcommand_packages(name: str) -> set:
    """Third-party packages ``ctith <name>`` imports: its function, the cli helpers it calls
    (its family's module and ``cli/_common.py``), the ctith modules they import, and the
    top-level imports of the modules on the way (``cli/__init__.py`` included)."""
    parser = cli.build_parser()
    sub = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices[name]
    func = sub.get_default("func")
    family = func.__module__.rsplit(".", 1)[-1]
    local, third, defs = set(), set(), {}
    for mod in ("__init__", "_common", family):
        tree = ast.parse((SRC / "cli" / f"{mod}.py").read_text())
        defs.update({n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)})
        loc, ext = _imports(ast.Module(body=[n for n in tree.body if not isinstance(n, ast.FunctionDef)],
                                       type_ignores=[]), ("cli",))
        local |= loc
        third |= ext
    todo, seen = [func.__name__], set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        loc, ext = _imports(defs[f], ("cli",))
        local |= loc
        third |= ext
        todo += [n.func.id for n in ast.walk(defs[f]) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                 and n.func.id in defs]
    return third | module_closure({m for m in local if m.split(".")[0] != "cli"})  # cli: followed above


RULES = rules()


def test_every_rule_has_an_env_and_calls_ctith():
    assert RULES, "no rules found"
    for rule, (env, subs) in RULES.items():
        if rule == "all":
            continue
        assert env is not None and env.exists(), f"rule {rule}: no conda env file"
        assert subs, f"rule {rule}: calls no ctith subcommand"


@pytest.mark.parametrize("rule", sorted(r for r in RULES if r != "all"))
def test_rule_env_holds_what_its_subcommands_import(rule):
    env, subs = RULES[rule]
    have = env_packages(env)
    pins = pyproject_pins()
    needed = set().union(*(subcommand_packages(s) for s in subs))
    unknown = needed - set(PACKAGES)
    assert not unknown, f"rule {rule}: add {sorted(unknown)} to PACKAGES in this test"
    for module in sorted(needed):
        names, pinned_as = PACKAGES[module]
        present = names & set(have)
        assert present, f"rule {rule} ({env.name}): imports {module} but the env has none of {sorted(names)}"
        version = have[present.pop()]
        assert version == pins[pinned_as], (f"{env.name}: {module} at {version!r}, pyproject pins "
                                            f"{pins[pinned_as]!r}")


def test_env_versions_agree_with_pyproject():
    pins = pyproject_pins()
    aliases = {"matplotlib-base": "matplotlib"}
    for env in (REPO / "envs").glob("*.yaml"):
        for name, version in env_packages(env).items():
            name = aliases.get(name, name)
            if name in pins:
                assert version == pins[name], f"{env.name}: {name} {version} but pyproject pins {pins[name]}"


def test_every_env_installs_ctith_after_creation():
    """Snakemake runs envs/<env>.post-deploy.sh in each new env; it must install ctith,
    whose build (no isolation) needs setuptools from the env file."""
    for env in sorted((REPO / "envs").glob("*.yaml")):
        script = env.with_name(f"{env.stem}.post-deploy.sh")
        assert script.is_file(), f"{env.name}: no {script.name}"
        assert "--editable \"$CTITH_SOURCE\"" in script.read_text(), script.name
        assert "setuptools" in env_packages(env), f"{env.name}: no setuptools for the ctith build"
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    assert 'os.environ.setdefault("CTITH_SOURCE", REPOSITORY)' in common
    # REPOSITORY: two folders above common.smk, whichever Snakefile is the main one.
    assert "REPOSITORY = os.path.dirname(os.path.dirname(str(workflow.current_basedir)))" in common
    assert (REPO / "workflow" / "rules" / "common.smk").is_file()


def test_post_deploy_script_gives_the_env_a_ctith_from_this_repository(tmp_path):
    """The script run as Snakemake runs it (inside the env, PYTHONPATH blocked), in a bare
    venv standing in for a new conda env."""
    import os
    import subprocess

    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    bin_dir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", PYTHONNOUSERSITE="1", CTITH_SOURCE=str(REPO))
    # What conda would install from the env file for the build (from the package index).
    build = env_packages(REPO / "envs" / "dl.yaml")["setuptools"]
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", f"setuptools>={build}"], env=env,
                   check=True, capture_output=True)
    env["PIP_NO_INDEX"] = "1"  # the script itself downloads nothing
    script = REPO / "envs" / "dl.post-deploy.sh"
    proc = subprocess.run(["bash", str(script)], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (bin_dir / "ctith").is_file()
    where = subprocess.run([str(bin_dir / "python"), "-c", "import ctith; print(ctith.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where) == REPO / "src" / "ctith" / "__init__.py"
    env.pop("CTITH_SOURCE")
    unset = subprocess.run(["bash", str(script)], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert unset.returncode != 0 and "CTITH_SOURCE" in unset.stderr


def test_the_default_profile_shares_no_key_with_the_others():
    """workflow/profiles/default is loaded beside any --profile and its keys win: a key
    in both would silently replace the other profile's (whole) value."""
    profiles = REPO / "workflow" / "profiles"
    default = set(yaml.safe_load((profiles / "default" / "config.yaml").read_text()))
    others = [p for p in profiles.glob("*/config.yaml") if p.parent.name != "default"]
    assert {p.parent.name for p in others} >= {"workstation", "slurm"}
    for path in others:
        shared = default & set(yaml.safe_load(path.read_text()))
        assert not shared, f"{path.parent.name} sets {sorted(shared)}, which the default profile overrides"


def test_every_rule_declares_its_memory_and_the_cluster_profile_takes_it():
    """Each rule's ``resources: mem_mb`` is sized from measured peak RSS (docs/cluster.md; printed by
    tests/benchmarks/bench_memory.py); the SLURM profile sets no memory of its own, so the
    rules' values reach sbatch."""
    from workflow_run import declared_mem_mb, rule_blocks

    declared = declared_mem_mb()
    assert sorted(declared) == sorted(rule for rule, _ in rule_blocks())
    assert min(declared.values()) >= 1000
    slurm = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    assert "mem_mb" not in slurm["default-resources"]
    assert not [rule for rule, res in slurm["set-resources"].items() if "mem_mb" in (res or {})]
