#!/usr/bin/perl

# Bad input to the metrics listener: other methods, unknown paths, a huge
# request line or headers, garbage, another HTTP version, a slow client, a
# client that leaves in the middle of its request.  Each gets a clear
# status or a close; no worker dies, nothing is logged above info, and no
# connection is left behind.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port wait_until /;
use RustDesk::Conf;
use RustDesk::Metrics;
use Time::HiRes qw/ sleep /;
use IO::Socket::INET;

my $t = Test::Nginx->new()->has()->plan(25);

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_relay_zone rlz:1m;',
], srv_relay(1),
	srv_block([ '127.0.0.1:%%PORT_2%%' ], 'rustdesk_metrics timeout=1s;')));

$t->run();

$SIG{PIPE} = 'IGNORE';

my $P = port(2);
my @pids = $t->worker_pids();
my $fds = $t->stable_fds();

###############################################################################

is(status('GET /metrics?name=x HTTP/1.1'), 200, 'a query string: 200');
is(status('GET /metrics HTTP/1.0'), 200, 'HTTP/1.0: 200');

my ($st, $h, $body) = http_get($P, '/metrics', method => 'HEAD');
ok($st == 200 && $h->{'content-length'} > 100 && $body eq '',
	'HEAD: 200, the length of the body, no body');

my $raw = http_raw($P, "POST /metrics HTTP/1.1\r\nHost: x\r\n"
	. "Content-Length: 100000\r\n\r\n" . ('x' x 100000));
my ($s2, $h2) = RustDesk::Metrics::parse_answer($raw);
is("$s2 $h2->{allow}", '405 GET, HEAD',
	'POST with a body: 405, Allow: GET, HEAD (the body read, not reset)');

is(status('DELETE /metrics HTTP/1.1'), 405, 'DELETE: 405');
is(status('get /metrics HTTP/1.1'), 400, 'a method in lower case: 400');
is(status('GET /nothing HTTP/1.1'), 404, 'an unknown path: 404');
is(status('GET / HTTP/1.1'), 404, '/: 404');
is(status('GET http://x/metrics HTTP/1.1'), 400, 'an absolute URI: 400');
is(status('GET /metrics HTTP/2.0'), 505, 'HTTP/2.0: 505');
is(status('GET /metrics HTTP/1.1x'), 400, 'a version with more: 400');
is(answer("GET /metrics\r\n\r\n"), 400, 'HTTP/0.9: 400');
is(answer("GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n"), 400,
	'a header without a colon: 400');
is(answer("GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n"), 400,
	'a folded header: 400');
is(answer("GET /metrics HTTP/1.1\r\nX: a\x01b\r\n\r\n"), 400,
	'a control character in a header: 400');

is(answer('GET /' . ('a' x 5000) . " HTTP/1.1\r\n\r\n"), 414,
	'a request line of 5000 bytes: 414');
is(answer("GET /metrics HTTP/1.1\r\n" . ("X-Long: " . ('b' x 100) . "\r\n")
	x 50 . "\r\n"), 431, 'headers of 5 KB: 431');

# garbage: answered at once, whatever follows

is(answer("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", keep => 1), 400,
	'a TLS handshake: 400 at once');
is(answer(join('', map { chr(int rand 256) } 1 .. 300), keep => 1), 400,
	'random bytes: 400');

# a slow client: its whole request within timeout=1s, however it trickles

my $slow = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$P") or die;
my $closed = 0;

for my $c (split //, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") {
	last unless $slow->syswrite($c);
	sleep 0.1;
	if (IO::Select->new($slow)->can_read(0)) {
		my $buf;
		$closed = !$slow->sysread($buf, 100) ? 'closed' : "answered: $buf";
		last;
	}
}

unless ($closed) {
	my $buf;
	$closed = IO::Select->new($slow)->can_read(3)
		&& !$slow->sysread($buf, 100) ? 'closed' : 'open';
}
is($closed, 'closed', 'a slow client: closed without an answer');
ok($t->wait_log(qr/metrics client timed out sending its request/),
	'... logged at info');

# a client that leaves in the middle

my $half = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$P") or die;
$half->syswrite("GET /metr");
$t->wait_read($half);
close $half;

ok($t->wait_log(qr/metrics client closed the connection in the middle/),
	'a client that leaves mid-request: logged at info');

# many at once, some leaving at once

my @many = map { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$P") }
	1 .. 200;
$_->syswrite("GET /metrics HTTP/1.1\r\n\r\n") for @many[0 .. 99];
close $_ for @many;

is(status('GET /metrics HTTP/1.1'), 200, 'after 200 connections, some '
	. 'closed at once: 200');

###############################################################################

is(join(' ', $t->worker_pids()), join(' ', @pids), 'no worker died');

# every connection above is gone: the workers hold what they held before

is($t->wait_fds('<=', $fds, 5), $fds, 'no connection left behind');

###############################################################################

sub status {
	my ($line) = @_;
	return answer("$line\r\nHost: x\r\n\r\n");
}

# The status of the answer to these bytes, 'closed' without one.  With
# keep, the connection stays open after them: the answer must not wait
# for more.
sub answer {
	my ($bytes, %o) = @_;
	my $raw;

	if ($o{keep}) {
		my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$P") or die;
		$s->syswrite($bytes);
		$raw = '';
		my $sel = IO::Select->new($s);
		while ($sel->can_read(3)) {
			last unless $s->sysread($raw, 4096, length $raw);
		}
		close $s;

	} else {
		$raw = http_raw($P, $bytes);
	}

	my ($status) = RustDesk::Metrics::parse_answer($raw);
	return $status // 'closed';
}

###############################################################################
