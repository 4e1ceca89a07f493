#!/usr/bin/env bash
# Runs the whole test suite against other Polygraphy releases than the one the README's install picks (the
# newest the pin `polygraphy>=0.49,<0.54` allows): by default 0.49.26, the newest patch of the oldest minor
# release the package accepts. CI runs only the pinned newest; run this before raising the pin or changing a
# patch in polygraphy_ext/integration/ (whose contract test tells what moved).
#
# Usage: .ci/polygraphy_matrix.sh [VERSION ...]        e.g. .ci/polygraphy_matrix.sh 0.49.26 0.50.3
#        MATRIX_TESTS="tests/hook" .ci/polygraphy_matrix.sh   (a part of the suite; default: all of tests/)
#
# Needs the README's set-up (.venv with the package installed). Each version gets a throwaway overlay venv
# holding only that Polygraphy; everything else (polygraphy-ext, its hook, onnx, onnxruntime, pytest...) comes
# from .venv through a .pth line, so a version costs one small download and one test run.
set -euo pipefail
cd "$(dirname "$0")/.."

base_python=.venv/bin/python
[ -x "$base_python" ] || { echo "run the README's install first (.venv is missing)" >&2; exit 1; }
base_site=$("$base_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(0.49.26)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for version in "${versions[@]}"; do
  venv="$scratch/polygraphy-$version"
  "$base_python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps "polygraphy==$version"
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # Processed after the overlay's own site-packages: its Polygraphy shadows the one in .venv.
  echo "import site; site.addsitedir('$base_site')" > "$site/zz_polygraphy_ext_base.pth"
  "$venv/bin/python" -c "import polygraphy, sys; v = polygraphy.__version__; print('polygraphy', v); sys.exit(v != '$version')"
  start=$(date +%s)
  # shellcheck disable=SC2086  # MATRIX_TESTS is a list of paths
  if "$venv/bin/python" -m pytest -q -p no:cacheprovider ${MATRIX_TESTS:-tests}; then
    echo "== polygraphy $version: PASSED in $(( $(date +%s) - start )) s"
  else
    echo "== polygraphy $version: FAILED in $(( $(date +%s) - start )) s"
    status=1
  fi
done
exit $status
