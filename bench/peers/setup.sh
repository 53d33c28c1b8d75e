#!/usr/bin/env bash
# Installs the Python reference stack that bench/peers/run.sh measures keel against:
#
#   - a virtual environment (python3 -m venv) with Django, gunicorn, uvicorn, requests,
#     httpx (and redis for the /stream/ view) from PyPI, pinned in requirements.txt;
#   - the Django project in djangoapp/ (committed; nothing is generated), its static files
#     collected into the work directory for nginx's /static/ alias;
#   - nginx from Debian (apt-get, as root), WITHOUT starting it: a policy-rc.d that
#     refuses service starts is in place during the install, so the package's default
#     site never listens on port 80. run.sh starts its own nginx on 127.0.0.1 only;
#   - Debian's fonts-dejavu-core when no DejaVu font is installed: keel compare draws the
#     text of its PNG charts with it (without any font the PNGs have bars but no text).
#
#   bench/peers/setup.sh [--no-nginx] [--no-fonts]
#
# Environment: VENV (default bench/peers/.venv), WORK (default bench/peers/.work),
# PYTHON (default python3). Safe to run again: it only adds what is missing.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${VENV:-$HERE/.venv}
WORK=${WORK:-$HERE/.work}
PYTHON=${PYTHON:-python3}
WITH_NGINX=1
WITH_FONTS=1
for arg in "$@"; do
    case "$arg" in
        --no-nginx) WITH_NGINX=0 ;;
        --no-fonts) WITH_FONTS=0 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

say() { echo "setup.sh: $*" >&2; }

# --- Python: venv + pinned packages -------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
say "installing requirements.txt into $VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"

# --- Django: static files for nginx's /static/ alias ---------------------------------
mkdir -p "$WORK"
(
    cd "$HERE/djangoapp"
    DJANGO_WORK_DIR=$WORK DJANGO_STATIC_ROOT=$WORK/static \
        "$VENV/bin/python" manage.py collectstatic --noinput --verbosity 0
    DJANGO_WORK_DIR=$WORK "$VENV/bin/python" manage.py check >/dev/null
)

# --- Debian packages: nginx (not started) and a font for PNG text --------------------
apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        say "cannot install $* (needs root and apt-get); install it yourself"
        return 1
    fi
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$policy" ]; then
        # Exit 101 = "action forbidden": invoke-rc.d then starts no service.
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        created=1
    fi
    local rc=0
    if ! apt-cache policy "$@" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        apt-get update -qq || true
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || rc=$?
    if [ "$created" = 1 ]; then rm -f "$policy"; fi
    return "$rc"
}

if [ "$WITH_NGINX" = 1 ]; then
    if command -v nginx >/dev/null; then
        say "nginx already installed: $(nginx -v 2>&1)"
    else
        say "installing nginx from Debian (not started)"
        apt_install nginx || say "nginx not installed: run.sh will skip django-sync-nginx"
    fi
fi

if [ "$WITH_FONTS" = 1 ]; then
    if ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf >/dev/null 2>&1; then
        say "DejaVu fonts present (PNG chart text)"
    else
        say "installing fonts-dejavu-core for the PNG charts' text"
        apt_install fonts-dejavu-core || say "no font installed: PNG charts will have no text"
    fi
fi

say "done: $("$VENV/bin/python" -c 'import django, gunicorn, uvicorn, requests, httpx; print("Django", django.get_version(), "gunicorn", gunicorn.__version__, "uvicorn", uvicorn.__version__, "requests", requests.__version__, "httpx", httpx.__version__)')"
