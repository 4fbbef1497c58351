#!/usr/bin/env bash
# Installs the Debian packages of scripts/system-packages.txt that are missing (needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")"
missing=()
while read -r package; do
  [[ -z "$package" || "$package" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done < system-packages.txt
# npm fetches axe-core for the browser tests; any npm will do (Debian's only when there is none)
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages for the tests: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
