"""Offline sandbox for the bot: fake Telegram Bot API, OpenAI, weather and files over real HTTP.

`python -m bot.sandbox [--host 127.0.0.1] [--port 0] [--state-file F] [--data-file DB]` prints the
variables to export (BOT_TOKEN, TELEGRAM_BASE_URL, OPENAI_BASE_URL, OPENAI_API_KEY, WEATHER_BASE_URL,
WEATHER_API_KEY, BOT_SANDBOX); `bot.sandbox.server.SandboxServer` runs it in a thread;
`bot.sandbox.client.SandboxClient` drives the control API. One sandbox models one bot: any
`<digits>:<35 chars>` token works, getMe's id is the token's digits. With --data-file (SQLite, store.py)
its queue and update/message ids survive its own restarts.

- /bot<token>/<method>: Telegram-style envelopes and errors (400 chat not found, message too long,
  HTML/MarkdownV2 parse errors, 401 bad token, 404 unknown method, 409 concurrent getUpdates, 413 upload
  over 50 MB); sending needs a chat the sandbox has seen in a pushed update (like Telegram).
- /control/updates (POST spec | [specs] | {"raw": update}; GET pending), /control/sent, /control/wait
  (408 + items on timeout), /control/chat_member, /control/fail (inject Bot API errors, e.g. 429 with
  retry_after), /control/reset, /control/health, /control/openai (requests the fake OpenAI received),
  /control/confirmations (when getUpdates confirmed updates: the drill's downtime).
- /openai/v1/chat/completions: "Sandbox answer: <last user message[:200]>"; key "sk-sandbox";
  markers [sandbox:401|429|quota|500|503|slow=N] in the last user message.
- /weather/data/2.5/weather: Kyiv, Lviv, Odesa, Kharkiv, Dnipro, London, Paris, Berlin, New York, Tokyo
  (and aliases); appid "sandbox-weather-key"; unknown city 404.
- /files/sample.mp4 (real 16x16 H.264), big.mp4 (60 MiB), slow.mp4?delay=N, video.html,
  cat.jpg (real 32x32 JPEG).
"""
