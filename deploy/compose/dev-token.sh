#!/usr/bin/env bash
# Prints a development token for the compose cluster, and the dashboard URL carrying it:
#
#   deploy/compose/dev-token.sh [SUB] [HOURS]        # needs openssl
#
# The token is an HS256 JWT signed with SWITCHBOARD_HMAC_SECRET (from the environment or the
# .env file next to docker-compose.yml; otherwise the compose file's development-only default),
# role viewer, every room (">"), valid for HOURS (default 12). Keep such tokens to development:
# production tokens come from your identity provider or backend.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
sub=${1:-dev-user}
hours=${2:-12}
dotenv_value() { [ -f "$ROOT/.env" ] && sed -n "s/^$1=//p" "$ROOT/.env" | tail -1 | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/"; }
secret=${SWITCHBOARD_HMAC_SECRET:-$(dotenv_value SWITCHBOARD_HMAC_SECRET || true)}
secret=${secret:-dev-only-insecure-hmac-secret-change-me}
port=${SWITCHBOARD_HTTP_PORT:-$(dotenv_value SWITCHBOARD_HTTP_PORT || true)}
port=${port:-8000}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
payload=$(printf '{"sub":"%s","exp":%d,"rooms":[">"],"role":"viewer"}' "$sub" $(( $(date +%s) + hours * 3600 )) | b64url)
signature=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)
token=$header.$payload.$signature

echo "token:     $token"
echo "dashboard: http://127.0.0.1:$port/?token=$token"
