#!/usr/bin/perl

# The relay console: hbbr's loopback commands (rustdesk-server's
# relay_server.rs, check_cmd) with the same output, on a listener of its
# own (loopback clients only), or on a relay port for loopback clients
# when asked ("rustdesk_relay loopback_console", hbbr's behaviour); lists
# read from files at start; changes reach all workers and new pairs.

use warnings;
use strict;

use Test::More;
use IO::Select;
use IO::Socket::INET;

use lib 't/lib';
use Test::Nginx qw/ port wait_until background background_result /;
use RustDesk::Conf;
use RustDesk::Client;
use RustDesk::RelayTest;

my $t = Test::Nginx->new()->has()->plan(41);

$t->write_file('blacklist.txt',
	"198.51.100.1 limited: too much traffic\n198.51.100.2\n");
$t->write_file('blocklist.txt',
	"198.51.100.3\n198.51.100.4 refused since yesterday\n");

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_relay_blacklist %%TESTDIR%%/blacklist.txt;',
	'rustdesk_relay_blocklist %%TESTDIR%%/blocklist.txt;',
	'rustdesk_relay_request_timeout 1s;',
], srv_relay(0), srv_relay(1, how => 'loopback_console'),
	srv_console(2, relay => 1),

	# the client address as a trusted proxy declares it
	srv_console(3, relay => 1, proxy => 1)));

$t->run();

my $HELP = join('', map { "$_\n" }
	'blacklist-add(ba) <ip>',
	'blacklist-remove(br) <ip>',
	'blacklist(b) <ip>',
	'blocklist-add(Ba) <ip>',
	'blocklist-remove(Br) <ip>',
	'blocklist(B) <ip>',
	'downgrade-threshold(dt) [value]',
	'downgrade-start-check(t) [value(second)]',
	'limit-speed(ls) [value(Mb/s)]',
	'total-bandwidth(tb) [value(Mb/s)]',
	'single-bandwidth(sb) [value(Mb/s)]',
	'usage(u)');

# "h" on a relay port waits for the server's request timeout (1 s): in a
# child process, meanwhile (checked at the end)

my $relay_h = background(sub { console_closed(port(0), 'h', 3) });

###############################################################################

# help, unknown commands

is(join('|', console_closed(port(2), 'h', 3)), "$HELP|1",
	'help, then the connection closed');
is(cmd("h\n"), $HELP, 'help, command with a newline');
is(cmd('bogus'), '', 'unknown command: nothing');
is(cmd(''), '', 'no command: nothing');

# the lists as read at start (anything after a space ignored)

is(list('b'), '198.51.100.1 198.51.100.2', 'blacklist from the file');
is(list('B'), '198.51.100.3 198.51.100.4', 'blocklist from the file');
is(cmd('b 198.51.100.1') . cmd('b 192.0.2.50'), "true\nfalse\n",
	'blacklist entry');
is(cmd('B 198.51.100.4') . cmd('B 198.51.100.1'), "true\nfalse\n",
	'blocklist entry');

# blacklist changes, then blocklist changes: add three, remove two, remove
# all (the entries from the file too)

for my $l ([ 'b', 'blacklist', 1, '198.51.100.1 198.51.100.2', '198.51.100.1' ],
	[ 'B', 'blocklist', 11, '198.51.100.3 198.51.100.4', '198.51.100.4' ])
{
	my ($c, $name, $n, $file, $one) = @$l;
	my @ip = map { '192.0.2.' . ($n + $_) } 0 .. 2;

	is(cmd("${c}a " . join('|', @ip)), '', "$name-add: no answer");
	is(cmd("$c $ip[1]"), "true\n", "$name-add: entry");
	is(list($c), "@ip $file", "$name-add: list");
	is(cmd("${c}r $ip[0]|$ip[2]"), '', "$name-remove: no answer");
	is(list($c), "$ip[1] $file", "$name-remove: list");
	cmd("${c}r all");
	is(cmd($c) . cmd("$c $one"), "false\n", "$name-remove all");
}

# the long names

cmd('blacklist-add 192.0.2.21');
cmd('blocklist-add 192.0.2.22');
my $long = cmd('blacklist 192.0.2.21') . cmd('blocklist 192.0.2.22');
cmd('blacklist-remove 192.0.2.21');
cmd('blocklist-remove 192.0.2.22');
$long .= cmd('blacklist') . cmd('blocklist') . cmd('single-bandwidth');
is($long, "true\ntrue\n128Mb/s\n", 'long command names');

# settings: defaults, set (no answer), values <= 0 or not numbers ignored

is(setting('dt', '0.5'), "0.66\n|\n0.5\n0.5\n0.5\n0.5\n",
	'downgrade-threshold');
is(setting('t', '3600'), "1800s\n|\n3600s\n3600s\n3600s\n3600s\n",
	'downgrade-start-check');
is(setting('ls', '2.5'), "32Mb/s\n|\n2.5Mb/s\n2.5Mb/s\n2.5Mb/s\n2.5Mb/s\n",
	'limit-speed');
is(setting('tb', '512'), "1024Mb/s\n|\n512Mb/s\n512Mb/s\n512Mb/s\n512Mb/s\n",
	'total-bandwidth');
is(setting('sb', '64'), "128Mb/s\n|\n64Mb/s\n64Mb/s\n64Mb/s\n64Mb/s\n",
	'single-bandwidth');

###############################################################################

# usage: a line per live pair, biggest total first, both directions counted

is(cmd('u'), '', 'usage: no pairs');

{
	my $x = relay_pair($t, port(0), 'usage-x', '127.0.0.6', '127.0.0.7');
	my $y = relay_pair($t, port(0), 'usage-y', '127.0.0.8', '127.0.0.9');

	# 2 MiB and 1 MiB at once (64 Mb/s now), then a trickle back

	stream([ $x ? (flow($x->{a}, $x->{b}, undef, 2 * MiB),
			flow($x->{b}, $x->{a}, 100)) : (),
		$y ? (flow($y->{a}, $y->{b}, undef, MiB),
			flow($y->{b}, $y->{a}, 100)) : () ], 2.5);

	my $u = cmd('u');
	note("usage:\n$u");

	my @lines = split /\n/, $u, -1;
	pop @lines if @lines && $lines[-1] eq '' && $u =~ /\n\z/;

	is(scalar(grep { m{^127\.0\.0\.\d+:\d+: \d+s \d+\.\d\dMB \d+kb/s \d+kb/s \d+kb/s$} }
		@lines) . ' of ' . scalar(@lines), '2 of 2', 'usage: format');

	my @bad;
	for my $i (0, 1) {
		my $p = ($x, $y)[$i] or next;
		my %sides = map { $_->sockhost() . ':' . $_->sockport() => 1 }
			$p->{a}, $p->{b};
		my ($addr) = ($lines[$i] // '') =~ /^(\S+): /;
		push @bad, 'line ' . ($i + 1) . ': ' . ($addr // 'none')
			. ', not ' . join(' or ', sort keys %sides)
			unless defined $addr && $sides{$addr};
	}
	is(join('; ', @bad), '', 'usage: the pairs, biggest first');

	usage_values($lines[0], 2, 'usage: figures of the 2 MiB pair');
	usage_values($lines[1], 1, 'usage: figures of the 1 MiB pair');

	close_pairs($t, $x, $y);

	my $left;
	wait_until(sub { ($left = cmd('u')) eq '' }, 3);
	is($left, '', 'usage: closed pairs gone');
}

###############################################################################

# changes reach every worker: set through one connection, asked through
# connections that land on both workers

cmd('sb 1');

{
	my (%seen, @answers);

	for (1 .. 40) {
		my ($answer, $s) = cmd_port('sb');
		push @answers, $answer;
		my $w = $t->worker_of($s);
		$seen{$w}++ if $w;
		last if keys %seen >= 2 && @answers >= 6;
	}

	is(scalar(keys %seen), 2, 'consoles answered by both workers');
	is(join('', @answers), "1Mb/s\n" x @answers,
		'single-bandwidth set in every worker');
}

# and a pair started after the change, in either worker, has the new
# single bandwidth: 1 Mb/s = 128 KiB/s (roughly)

{
	my @p = relay_pairs_on_workers($t, port(0), 'after-sb', 2);
	my @f = @{stream([ map { flow($_->{b}, $_->{a}) } @p ], 2)};
	my @r = map { rate($_, 0.3) } @f;

	note('rates after sb 1: ' . join(' ', map { sprintf('%.1f KiB/s',
		$_ / 1024) } @r));

	is(scalar(grep { $_ >= 64 * 1024 && $_ <= 192 * 1024 } @r) . ' of '
		. scalar(@p), '2 of 2', 'single-bandwidth applies to new pairs')
		or diag('rates: ' . join(' ', map { sprintf('%.1f KiB/s',
			$_ / 1024) } @r));

	close_pairs($t, @p);
	cmd('sb 128');
}

###############################################################################

# no console on a relay port by default: "h" is a bad or incomplete first
# message, closed at the latest after the request timeout (1 s)

{
	my ($answer, $closed) = background_result($relay_h);
	is($answer . '|' . $closed, '|1', 'relay port: no console, closed');
}

# with loopback_console, loopback clients of the relay port get it

is(cmd('h', port(1)), $HELP, 'relay port with loopback_console: help');

# loopback only: a trusted proxy's client address decides

is(cmd("PROXY TCP4 127.0.0.9 127.0.0.1 1000 2000\r\nh", port(3)), $HELP,
	'console behind a proxy, loopback client');
is(cmd("PROXY TCP4 192.0.2.1 127.0.0.1 1000 2000\r\nh", port(3)), '',
	'console behind a proxy, non-loopback client: nothing');
like($t->read_file('error.log'), qr/refused.*client: 192\.0\.2\.1\b/,
	'non-loopback client: refusal logged with its address');
is(cmd("PROXY TCP4 192.0.2.1 127.0.0.1 1000 2000\r\nBa 192.0.2.99",
	port(3)) . cmd('B 192.0.2.99'), "false\n",
	'non-loopback client: no change');

###############################################################################

sub cmd {
	my ($c, $p) = @_;
	return console($p || port(2), $c, 3);
}

# the answer and the connection
sub cmd_port {
	my ($c) = @_;

	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . port(2))
		or die "connect: $!";
	$s->syswrite($c);

	my ($all, $sel) = ('', IO::Select->new($s));
	while ($sel->can_read(3)) {
		my $n = $s->sysread(my $buf, 65536);
		last unless $n;
		$all .= $buf;
	}

	return ($all, $s);
}

# a list's entries, sorted, on one line ('-' for an empty line)
sub list {
	my ($c) = @_;
	my $out = cmd($c);
	my @e = map { length $_ ? $_ : '-' } split /\n/, $out;
	push @e, '(no newline at the end)' if length $out && $out !~ /\n\z/;
	return join(' ', sort @e);
}

# default | answer to setting | after, after 0, after -1, after a word
sub setting {
	my ($c, $v) = @_;
	my $out = cmd($c) . '|' . cmd("$c $v") . "\n";
	$out .= cmd($c);
	for my $bad ('0', '-1', 'abc') {
		cmd("$c $bad");
		$out .= cmd($c);
	}
	return $out;
}

# "<ip>:<port>: <s>s <MB>MB <highest>kb/s <average>kb/s <current>kb/s"
# for a pair that moved $mib MiB at once, then a trickle
sub usage_values {
	my ($line, $mib, $name) = @_;

	my ($s, $mb, $high, $avg, $cur) = ($line // '')
		=~ m{: (\d+)s (\d+\.\d\d)MB (\d+)kb/s (\d+)kb/s (\d+)kb/s$};

	unless (defined $s) {
		fail($name);
		diag('no usage line');
		return;
	}

	my $bits = $mib * MiB * 8;
	my @bad;

	push @bad, "elapsed $s s" unless $s >= 1 && $s <= 4;
	push @bad, "total ${mb}MB" unless $mb eq sprintf('%.2f', $mib);
	push @bad, "highest $high" unless $high >= $bits / 2 / 1000 * 0.95
		&& $high <= $bits / 1000 * 1.05;
	push @bad, "average $avg" unless $avg >= $bits / 4500
		&& $avg <= $bits / 900 && $avg <= $high;
	push @bad, "current $cur" unless $cur <= 10;

	is(join(', ', @bad), '', $name);
}
