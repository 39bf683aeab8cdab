#!/usr/bin/perl

# Limits of the relay (hbbr, PROTOCOL.md section 7), measured at the
# receiving side over a few seconds of streaming: single bandwidth per pair
# (both directions together), total bandwidth over all pairs of both
# workers, the blacklist's limit speed, the blocklist at accept and for a
# live pair (through the console), downgrading of a pair that keeps above
# the threshold.  Each part runs its own nginx configuration.

use warnings;
use strict;

use Test::More;
use List::Util qw/ sum min max /;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client;
use RustDesk::RelayTest;

my $t = Test::Nginx->new()->modules('relay')->has()->plan(21);

my $SKIP = 0.3;         # seconds of streaming not measured

###############################################################################

# 1. single bandwidth: 8 Mb/s = 1 MiB/s per pair, both directions together

start(<<'EOF');
    rustdesk_relay_single_bandwidth 8;
    rustdesk_relay_total_bandwidth 0;
EOF

is(console(port(1), 'sb'), "8Mb/s\n", 'single bandwidth: as configured');

# two pairs measured at once (the bandwidth is the pair's): one streaming
# one way, the other both ways

{
	my $p1 = relay_pair($t, port(0), 'single-1', '127.0.0.1', '127.0.0.1');
	my $p2 = relay_pair($t, port(0), 'single-2', '127.0.0.1', '127.0.0.1');
	my @f = streamed(3, $p1 ? flow($p1->{b}, $p1->{a}) : undef,
		$p2 ? (flow($p2->{b}, $p2->{a}), flow($p2->{a}, $p2->{b}))
		: (undef, undef));

	within(rate_of($f[0]), MiB, 0.2, 'single bandwidth: one way');
	within(rate_of($f[1]) + rate_of($f[2]), MiB, 0.2,
		'single bandwidth: both ways counted together');
	close_pairs($t, $p1, $p2);
}

###############################################################################

# 2. total bandwidth: 8 Mb/s for 4 pairs, two living in each worker

start(<<'EOF');
    rustdesk_relay_total_bandwidth 8;
    rustdesk_relay_single_bandwidth 0;
EOF

{
	my @p = relay_pairs_on_workers($t, port(0), 'total', 4);
	my %w = map { $_->{worker} => 1 } @p;

	is(scalar(@p) . ' pairs, ' . scalar(keys %w) . ' workers',
		'4 pairs, 2 workers', 'total bandwidth: pairs in both workers');

	my @f = streamed(3, map { flow($_->{b}, $_->{a}) } @p);
	my @r = map { rate_of($_) } @f;
	my $sum = sum(0, @r);
	note('per pair: ' . join(' ', map { mib($_) } @r));

	within($sum, MiB, 0.2, 'total bandwidth: 4 pairs together');

	ok(@r == 4 && min(@r) >= $sum / 16, 'total bandwidth: every pair moves')
		or diag('rates: ' . join(' ', map { mib($_) } @r));

	close_pairs($t, @p);
}

###############################################################################

# 3. blacklist: pairs with a listed IP (either side) get the limit speed,
# 4 Mb/s, others the single bandwidth, 16 Mb/s

$t->write_file('blacklist.txt',
	"192.0.2.9\n127.0.0.2 speed limited for the test\n");
$t->write_file('blocklist.txt', "192.0.2.10\n127.0.0.4\n");

start(<<'EOF');
    rustdesk_relay_blacklist %%TESTDIR%%/blacklist.txt;
    rustdesk_relay_blocklist %%TESTDIR%%/blocklist.txt;
    rustdesk_relay_limit_speed 4;
    rustdesk_relay_single_bandwidth 16;
    rustdesk_relay_total_bandwidth 0;
EOF

{
	my $x1 = relay_pair($t, port(0), 'black-1', '127.0.0.2', '127.0.0.1');
	my $x2 = relay_pair($t, port(0), 'black-2', '127.0.0.1', '127.0.0.2');
	my $y = relay_pair($t, port(0), 'black-3', '127.0.0.3', '127.0.0.1');

	my @f = streamed(3, map { $_ ? flow($_->{b}, $_->{a}) : undef }
		$x1, $x2, $y);

	within(rate_of($f[0]), MiB / 2, 0.2,
		'blacklist: listed IP waiting, limit speed');
	within(rate_of($f[1]), MiB / 2, 0.2,
		'blacklist: listed IP second, limit speed');
	within(rate_of($f[2]), 2 * MiB, 0.2,
		'blacklist: IP not listed, single bandwidth');

	close_pairs($t, $x1, $x2, $y);
}

###############################################################################

# 4. blocklist, read at start: closed at accept, never paired

{
	my $c = RustDesk::Client->tcp(port(0), LocalAddr => '127.0.0.4');
	$c->send_msg(request_relay => { uuid => 'blocked-1' });

	ok($c->closed(2), 'blocklist: connection closed');
	ok($t->wait_log(qr/rustdesk: 127\.0\.0\.4 blocked/, 1, 2),
		'blocklist: logged');

	my $d = relay_side(port(0), 'blocked-1', '127.0.0.1');
	$t->wait_log(qr/new relay request "blocked-1"/, 1, 3);

	# a sleep: what is checked is that nothing more comes for the uuid
	sleep 0.3;

	is($t->log_count(qr/new relay request "blocked-1"/) . ' '
		. $t->log_count(qr/relay "blocked-1" paired/), '1 0',
		'blocklist: not waiting, not paired');

	close $d;
	$c->close();
	$t->wait_log(qr/relay client of "blocked-1" left before its partner/,
		1, 3);
}

###############################################################################

# 5. an IP blocklisted through the console ends its pairs (either side)
# within about a second; other pairs go on

{
	my $p1 = relay_pair($t, port(0), 'live-1', '127.0.0.5', '127.0.0.1');
	my $p2 = relay_pair($t, port(0), 'live-2', '127.0.0.1', '127.0.0.5');
	my $p3 = relay_pair($t, port(0), 'live-3', '127.0.0.1', '127.0.0.1');

	my $at;
	my @f = streamed(5, sub {
		my ($now, $flows) = @_;

		if (!defined $at && $now >= 1) {
			$at = $now;
			console(port(1), 'Ba 127.0.0.5');
		}

		return 0 unless defined $at;
		return 1 if $now > $at + 2.5;

		# done when both listed pairs ended on both sides, and 1 s more
		return 0 if grep { !defined $_->{from_end} || !defined $_->{to_end} }
			@$flows[0, 1];
		return $now > 1 + max(map { $_->{from_end}, $_->{to_end} }
			@$flows[0, 1]);
	}, map { $_ ? flow($_->{b}, $_->{a}) : undef } $p1, $p2, $p3);

	$at //= 0;

	for my $i (0, 1) {
		my $f = $f[$i];
		my $end = (defined $f->{from_end} && defined $f->{to_end})
			? max($f->{from_end}, $f->{to_end}) - $at : undef;

		note(sprintf('pair %d ended %s after Ba', $i + 1,
			defined $end ? sprintf('%.2f s', $end) : 'never'));
		ok(defined $end && $end <= 1.5, 'blocklisted live: pair ' . ($i + 1)
			. ' (listed IP ' . ($i ? 'second' : 'waiting') . ') ended')
			or diag('ended: '
				. (defined $end ? sprintf('after %.2f s', $end)
				: 'sender ' . ($f->{from_end} // 'no')
				. ', receiver ' . ($f->{to_end} // 'no')));
	}

	ok(!defined $f[2]{to_end} && !defined $f[2]{from_end}
		&& rate($f[2], $at + 0.3) > MiB, 'blocklisted live: other pair goes on')
		or diag('rate ' . mib(rate($f[2], $at + 0.3)));

	like($t->read_file('error.log'), qr/rustdesk: 127\.0\.0\.5 blocked/,
		'blocklisted live: logged');

	close_pairs($t, $p1, $p2, $p3);
}

###############################################################################

# 6. downgrade: after 1 s a pair whose average is above 0.5 x single
# (8 Mb/s) gets the limit speed (2 Mb/s); one below it does not

start(<<'EOF');
    rustdesk_relay_single_bandwidth 8;
    rustdesk_relay_limit_speed 2;
    rustdesk_relay_downgrade_threshold 0.5;
    rustdesk_relay_downgrade_start_check 1s;
    rustdesk_relay_total_bandwidth 0;
EOF

{
	my $p1 = relay_pair($t, port(0), 'down-1', '127.0.0.1', '127.0.0.1');
	my $p2 = relay_pair($t, port(0), 'down-2', '127.0.0.1', '127.0.0.1');

	my ($down, $polled) = (undef, 0);
	my @f = streamed(6, sub {
		my ($now) = @_;

		return $now >= $down + 2.5 if defined $down;
		return 0 if $now - $polled < 0.1;

		$polled = $now;
		$down = $now if $t->read_file('error.log')
			=~ /relay "down-1" downgraded/;
		return 0;
	}, $p1 ? flow($p1->{b}, $p1->{a}) : undef,
		$p2 ? flow($p2->{b}, $p2->{a}, 0.3 * MiB) : undef);

	note('downgraded after ' . (defined $down ? sprintf('%.2f s', $down)
		: 'never'));
	ok(defined $down && $down >= 0.5 && $down <= 3,
		'downgrade: logged after 1-2 s')
		or diag('downgraded: ' . ($down // 'no'));

	$down //= 3;

	within(rate_of($f[0], $SKIP, $down), MiB, 0.2,
		'downgrade: single bandwidth before');
	within(rate_of($f[0], $down + 0.5, $down + 2.5), MiB / 4, 0.25,
		'downgrade: limit speed after');

	unlike($t->read_file('error.log'), qr/relay "down-2" downgraded/,
		'downgrade: pair below the threshold not downgraded');
	within(rate_of($f[1]), 0.3 * MiB, 0.2, 'downgrade: its rate');

	close_pairs($t, $p1, $p2);
}

###############################################################################

sub start {
	my ($limits) = @_;
	$t->restart(stream_conf($limits, srv_relay(0),
		srv_console(1, relay => 1)));
}

# stream() on the flows that exist: an undefined one (its pair failed)
# comes back as an empty flow.
sub streamed {
	my ($duration, @flows) = @_;
	my $tick = ref $flows[0] eq 'CODE' ? shift @flows : undef;

	my @real = grep { defined } @flows;
	my $tk = $tick ? sub { $tick->($_[0], \@flows) } : undef;
	stream(\@real, $duration, $tk) if @real;

	return map { $_ // { samples => [ [ 0, 0 ] ], duration => 0, got => 0 } }
		@flows;
}

sub rate_of {
	my ($f, $from, $to) = @_;
	return 0 unless $f;
	return rate($f, $from // $SKIP, $to);
}

sub mib { sprintf('%.3f MiB/s', $_[0] / MiB) }

sub within {
	my ($got, $want, $tol, $name) = @_;

	note(sprintf('%s: %s (expected %s +- %d%%)', $name, mib($got),
		mib($want), $tol * 100));

	ok(abs($got - $want) <= $tol * $want, $name)
		or diag(sprintf('measured %s, expected %s +- %d%%', mib($got),
			mib($want), $tol * 100));
}
