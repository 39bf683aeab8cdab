package RustDesk::Conf;

# The tests' nginx.conf, from the pieces they have in common: the stream
# block with its directives and the server blocks of the rendezvous
# server, the NAT-test port, the relay, the consoles.  Ports are the
# harness's %%PORT_n%%; the result goes through write_file_expand().
#
#     $t->write_file_expand('nginx.conf', stream_conf([
#         'rustdesk_key_dir %%TESTDIR%%/keys;',
#         'rustdesk_database off;',
#     ], srv_rendezvous(1), srv_nat_test(0)));
#
# gives
#
#     %%TEST_GLOBALS%%
#
#     stream {
#         rustdesk_key_dir %%TESTDIR%%/keys;
#         rustdesk_database off;
#
#         server {
#             listen 127.0.0.1:%%PORT_1%% reuseport;
#             listen 127.0.0.1:%%PORT_1%% udp reuseport;
#             rustdesk_rendezvous;
#         }
#
#         server {
#             listen 127.0.0.1:%%PORT_0%% reuseport;
#             rustdesk_nat_test;
#         }
#     }
#
# Every listener is reuseport (the kernel spreads the connections over
# both workers) unless reuseport => 0.

use warnings;
use strict;

use Exporter qw/ import /;

our @EXPORT = qw/ stream_conf srv_block srv_rendezvous srv_nat_test srv_hbbs
	srv_ws_rendezvous srv_relay srv_console srv_blank http_conf srv_ws_proxy
	tls make_cert /;

# The configuration: %%TEST_GLOBALS%%, then the stream block with the
# directives (a list of lines, indented here; or a string of them as they
# are) and the servers.
sub stream_conf {
	my ($directives, @servers) = @_;

	$directives = join('', map { "    $_\n" } @$directives)
		if ref $directives;

	return "\n%%TEST_GLOBALS%%\n\nstream {\n" . $directives
		. join('', map { "\n$_" } @servers) . "}\n";
}

# A server block: its listen lines, then its directives.
sub srv_block {
	my ($listen, @directives) = @_;

	return "    server {\n"
		. join('', map { "        listen $_;\n" } @$listen)
		. join('', map { "        $_\n" } @directives) . "    }\n";
}

# The listen line of port n (on 127.0.0.1, or on host): reuseport unless
# reuseport => 0, and the flags given.
sub _listen {
	my ($n, $o, @flags) = @_;
	my $rp = ($o->{reuseport} // 1) ? ' reuseport' : '';
	my $host = $o->{host} // '127.0.0.1';
	return join(' ', "$host:%%PORT_${n}%%", @flags) . $rp;
}

# The rendezvous server on port n, TCP and UDP (the UDP listener is always
# reuseport).  Options: reuseport (TCP), udp => 0 (TCP only), ipv6 (on
# [::1] too), and directives (a list).
sub srv_rendezvous {
	my ($n, %o) = @_;
	my @l;

	for my $host ('127.0.0.1', $o{ipv6} ? '[::1]' : ()) {
		push @l, _listen($n, { %o, host => $host });
		push @l, "$host:%%PORT_${n}%% udp reuseport" if $o{udp} // 1;
	}

	return srv_block(\@l, 'rustdesk_rendezvous;', @{$o{directives} // []});
}

# The NAT-test port n.  Options: reuseport, host, console (the console on
# it too), directives.
sub srv_nat_test {
	my ($n, %o) = @_;
	return srv_block([ _listen($n, \%o) ],
		'rustdesk_nat_test' . ($o{console} ? ' console' : '') . ';',
		@{$o{directives} // []});
}

# The rendezvous server's two ports as hbbs has them: main (TCP and UDP)
# and NAT test.  Options: those of both (udp for the main port only).
sub srv_hbbs {
	my ($main, $nat, %o) = @_;
	my %n = %o;
	delete $n{udp};
	return (srv_rendezvous($main, %o), srv_nat_test($nat, %n));
}

# The rendezvous server's WebSocket port n.  Options: reuseport, ssl.
sub srv_ws_rendezvous {
	my ($n, %o) = @_;
	return srv_block([ _listen($n, \%o, $o{ssl} ? 'ssl' : ()) ],
		'rustdesk_rendezvous websocket;');
}

# The relay on port n.  Options: reuseport, ssl, and how: 'websocket' or
# 'loopback_console'.
sub srv_relay {
	my ($n, %o) = @_;
	return srv_block([ _listen($n, \%o, $o{ssl} ? 'ssl' : ()) ],
		'rustdesk_relay' . ($o{how} ? " $o{how}" : '') . ';');
}

# A console on port n: the rendezvous server's (rustdesk_console) or the
# relay's (relay => 1).  With proxy => 1, behind a trusted proxy (the
# PROXY protocol from 127.0.0.1 says who the client is).
sub srv_console {
	my ($n, %o) = @_;
	my $d = $o{relay} ? 'rustdesk_relay_console;' : 'rustdesk_console;';

	return srv_block([ "127.0.0.1:%%PORT_${n}%% proxy_protocol" ],
		'set_real_ip_from 127.0.0.1;', $d) if $o{proxy};

	return srv_block([ _listen($n, \%o) ], $d);
}

# Port n listening and saying nothing: a relay server offered, whose
# health check passes.
sub srv_blank {
	my ($n) = @_;
	return srv_block([ "127.0.0.1:%%PORT_${n}%%" ], 'return "";');
}

# TLS: the directives of the test's certificate (made by make_cert()).
sub tls {
	return ('ssl_certificate %%TESTDIR%%/cert.pem;',
		'ssl_certificate_key %%TESTDIR%%/cert.key;');
}

# A self-signed certificate for localhost in the test directory: cert.pem
# and cert.key.
sub make_cert {
	my ($t) = @_;
	my $d = $t->testdir();

	my $out = `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost \\
		-days 2 -keyout $d/cert.key -out $d/cert.pem 2>&1`;
	die "openssl could not make a certificate: $out"
		unless -s "$d/cert.pem" && -s "$d/cert.key";
}

# An http block (to put beside the stream block): no access log, the
# temporary files in the test directory, the directives (a list) and the
# servers.
sub http_conf {
	my ($directives, @servers) = @_;

	return "\nhttp {\n" . join('', map { "    $_\n" } 'access_log off;',
			(map { "${_}_temp_path %%TESTDIR%%/${_}_temp;" }
				qw/ client_body proxy fastcgi uwsgi scgi /),
			@$directives)
		. join('', map { "\n$_" } @servers) . "}\n";
}

# An http server on port n that passes the WebSocket requests for a path
# on to port 'to', the client's address in X-Real-IP, as a reverse proxy in
# front of the WebSocket ports does.  Options: path, to, reuseport, ssl
# (with the test's certificate), connection (the Connection header it
# sends, default "upgrade"), directives (more for the location).
sub srv_ws_proxy {
	my ($n, %o) = @_;

	my $location = "location $o{path} {\n" . join('', map { "            $_\n" }
			"proxy_pass http://127.0.0.1:%%PORT_$o{to}%%;",
			'proxy_http_version 1.1;',
			'proxy_set_header Upgrade $http_upgrade;',
			'proxy_set_header Connection ' . ($o{connection} // '"upgrade"')
				. ';',
			'proxy_set_header X-Real-IP $remote_addr;',
			@{$o{directives} // []})
		. '        }';

	return srv_block([ _listen($n, \%o, $o{ssl} ? 'ssl' : ()) ],
		$o{ssl} ? tls() : (), $location);
}

1;
