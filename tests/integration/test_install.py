"""test_install.py - `meson install --destdir` lays out what an admin
deploys (issue 8 item 1): both programs, the systemd unit with the
configured prefix in ExecStart=, the man pages (rendering without
warnings), the bash completion (loads, completes verbs and names), the
example config (accepted by the programs)."""
import json
import os
import shutil
import subprocess
from types import SimpleNamespace

import pytest

import scopehold_it as it

BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    build = it.Build()
    if build.missing():
        pytest.fail(f"not built: {build.missing()}", pytrace=False)
    if not shutil.which("meson"):
        pytest.skip("meson is not installed")
    dest = str(tmp_path_factory.mktemp("destdir"))
    p = subprocess.run(["meson", "install", "-C", build.dir, "--destdir", dest, "--no-rebuild", "--quiet"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert p.returncode == 0, p.stdout
    opts = json.loads(subprocess.run(["meson", "introspect", "--buildoptions", build.dir], check=True,
                                     stdout=subprocess.PIPE, text=True, timeout=120).stdout)
    o = {x["name"]: x["value"] for x in opts}
    files = []
    for d, _, names in os.walk(dest):
        files += [os.path.join(d, n) for n in names]
    yield SimpleNamespace(dest=dest, prefix=o["prefix"], opts=o, files=files, build=build)
    shutil.rmtree(dest, ignore_errors=True)


def one(inst, suffix):
    found = [f for f in inst.files if f.endswith(suffix)]
    assert len(found) == 1, f"{suffix}: {found} (installed: {sorted(inst.files)})"
    return found[0]


def test_programs_in_sbin_and_bin(installed):
    p = installed.prefix
    assert os.access(installed.dest + os.path.join(p, installed.opts["sbindir"], "scopeholdfs"), os.X_OK)
    assert os.access(installed.dest + os.path.join(p, installed.opts["bindir"], "scopeholdctl"), os.X_OK)


def test_unit_is_installed_with_the_prefix_in_execstart(installed):
    unit = one(installed, "/systemd/system/scopeholdfs.service")
    with open(unit) as f:
        text = f.read()
    sbin = os.path.join(installed.prefix, installed.opts["sbindir"], "scopeholdfs")
    assert f"ExecStart={sbin} " in text, text
    assert unit.startswith(installed.dest + installed.prefix), unit


def test_man_pages_render_without_warnings(installed):
    for page in ("man8/scopeholdfs.8", "man8/scopeholdctl.8"):
        found = [f for f in installed.files if f.endswith(page)]
        if not found and not shutil.which("scdoc"):
            pytest.skip("scdoc is not installed (scripts/setup installs it): no man pages")
        assert len(found) == 1, (page, installed.files)
        p = subprocess.run(["man", "--warnings", "-l", found[0]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env={**it.READER_ENV, "MANWIDTH": "80"}, timeout=60)
        assert p.returncode == 0 and p.stderr == "", p.stderr
        assert "EXIT STATUS" in p.stdout and "EXAMPLES" in p.stdout


COMPLETE = r'''
source "$1"; source "$2"
comp() {
	COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
	read -ra COMP_WORDS <<< "$COMP_LINE"
	[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
	_scopeholdctl; echo "${COMPREPLY[*]}"
}
comp "scopeholdctl "
comp "scopeholdctl au"
comp "$3 --db $4 --key-file $5 grant "
comp "$3 --db $4 --key-file $5 grant beta "
'''


def test_bash_completion_completes_verbs_and_names(installed, vault):
    if not os.path.exists(BASH_COMPLETION):
        pytest.skip("bash-completion is not installed (scripts/setup installs it)")
    comp = one(installed, "/bash-completion/completions/scopeholdctl")
    vault.agent("beta", "pb", it.UID_B)
    vault.put("github/token", it.new_value())
    p = subprocess.run(["bash", "-c", COMPLETE, "bash", BASH_COMPLETION, comp, installed.build.ctl, vault.db, vault.key],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    out = p.stdout.splitlines()
    assert p.returncode == 0 and len(out) == 4, (p.stdout, p.stderr)
    assert {"init", "secret", "agent", "grant", "audit", "status", "exec"} <= set(out[0].split())
    assert out[1] == "audit"
    assert out[2] == "beta" and out[3] == "github/token", out


def test_example_config_is_accepted(installed, vault):
    ex = one(installed, "/doc/scopehold/scopehold.ini.example")
    p = vault.ctl("-c", ex, "provider", "list")
    assert p.returncode == 0, p.stderr
