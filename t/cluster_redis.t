#!/usr/bin/perl

# Cluster mode's connection to Redis (rustdesk_cluster): each worker
# connects in the background, authenticates, selects its database and
# names itself (CLIENT LIST shows "ngx_rustdesk:<host>:<pid>"); an outage
# is logged once per worker, not once per retry, and its end once; a
# wrong password is said as Redis says it; reload and stop leave nothing
# behind.  The URL and the directives are checked when the configuration
# is loaded.
#
# Each host has one more connection: worker 0 listens to the host's
# channel on it (t/cluster_channel.t), named "...:<pid>:listen".
#
# Redis is Debian's redis-server, started by this test on a free loopback
# port and stopped at its end.

use warnings;
use strict;

use Test::More;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port wait_until wait_value /;
use RustDesk::Conf;
use RustDesk::Redis;

my $t = Test::Nginx->new()->has()->modules('rendezvous');

plan(skip_all => 'no redis-server (Debian package redis-server)')
	unless RustDesk::Redis->available();

$t->plan(18);

my $redis = RustDesk::Redis->start($t->testdir(), port(9));
my $locked = RustDesk::Redis->start($t->testdir(), port(8),
	requirepass => 'pa ss@word');

###############################################################################

# the configuration: checked when it is loaded

like(config_error('rustdesk_cluster http://127.0.0.1:%%PORT_9%%;'),
	qr/takes a redis:\/\/host\[:port\]\[\/db\] or redis-sentinel:\/\//,
	'not a redis URL');
like(config_error('rustdesk_cluster redis://u@127.0.0.1:%%PORT_9%%;'),
	qr/has credentials other than \[user\]:password@/,
	'credentials without a password');
like(config_error('rustdesk_cluster redis://127.0.0.1:%%PORT_9%%/x;'),
	qr/has an invalid database number/, 'a bad database number');
like(config_error('rustdesk_cluster_ttl 60s;'),
	qr/"rustdesk_cluster_\*" directives need "rustdesk_cluster"/,
	'a cluster directive without rustdesk_cluster');
like(config_error('rustdesk_cluster redis://127.0.0.1:%%PORT_9%%;',
		'rustdesk_cluster_host "a b";'),
	qr/may hold letters, digits/, 'a host name with a space');
like(config_error('rustdesk_cluster redis://:x@127.0.0.1:%%PORT_9%%;',
		'rustdesk_cluster_password y;'),
	qr/is duplicate, or the URL has a password/, 'two passwords');

###############################################################################

# connected: both workers, named

start('rustdesk_cluster redis://127.0.0.1:%%PORT_9%%;',
	'rustdesk_cluster_host h1;');

my $names = names('h1');

is(wait_value(sub { named($redis) }, $names), $names,
	'each worker connected and named itself, and a listener');
is($t->wait_log(qr/connected to redis redis:\/\/127\.0\.0\.1:\d+\/0/, 3), 3,
	'logged once per connection, without a password');

# Redis goes away: one error per worker, however many retries

$redis->stop();

is($t->wait_log(qr/\[error\].*redis redis:\S+ is not available: /, 3), 3,
	'the outage logged by each connection');
sleep 3;
is($t->log_count(qr/redis redis:\S+ is (still )?not available/), 3,
	'once only, through 3 s of retries');

$redis->restart();

is($t->wait_log(qr/\[notice\].*redis redis:\S+ is available again after/,
		3, 15), 3, 'its end logged by each connection');
is(wait_value(sub { named($redis) }, $names), $names, 'all back');

###############################################################################

# AUTH and SELECT: a password of rustdesk_cluster_password, database 3

$t->write_file_expand('nginx.conf', conf(
	'rustdesk_cluster redis://127.0.0.1:%%PORT_8%%/3;',
	'rustdesk_cluster_password "pa ss@word";',
	'rustdesk_cluster_host h2;'));
$t->reload();

$names = names('h2');

is(wait_value(sub { named($locked) }, $names), $names,
	'authenticated with rustdesk_cluster_password');
is(wait_value(sub { scalar(() = $locked->cmd('CLIENT', 'LIST')
		=~ /\bname=ngx_rustdesk:h2:\d+(:listen)? .*\bdb=3\b/g) }, 3), 3,
	'database 3 selected');
is(wait_value(sub { join(' ', $redis->client_names()) }, ''), '',
	'the old workers\' connections are gone after the reload');

# the password in the URL, and a wrong one

$t->write_file_expand('nginx.conf', conf(
	'rustdesk_cluster redis://:wrong@127.0.0.1:%%PORT_8%%;',
	'rustdesk_cluster_host h3;'));
$t->reload();

is($t->wait_log(qr/redis redis:\/\/127\.0\.0\.1:\d+\/0 is not available: WRONGPASS/, 3), 3,
	'a wrong password said as Redis says it');
sleep 2;
is($t->log_count(qr/WRONGPASS/), 3, 'once per connection, through retries');

# no password where one is needed

$t->write_file_expand('nginx.conf', conf(
	'rustdesk_cluster redis://127.0.0.1:%%PORT_8%%;',
	'rustdesk_cluster_host h4;'));
$t->reload();

is($t->wait_log(qr/is not available: NOAUTH/, 3), 3,
	'no password where one is needed');

###############################################################################

# The names the connections of host h should have: one per worker, and
# worker 0's listener (which of the two pids it is does not matter here).
sub names {
	my ($h) = @_;
	return join(' ', (map { "ngx_rustdesk:$h:$_" } sort $t->worker_pids()),
		"ngx_rustdesk:$h:*:listen");
}

sub named {
	my ($redis) = @_;
	my @n = $redis->client_names();
	my @plain = sort grep { !/:listen$/ } @n;
	my @listen = map { s/:\d+:listen$/:*:listen/r } grep { /:listen$/ } @n;
	return join(' ', @plain, @listen);
}

sub conf {
	my (@d) = @_;
	return stream_conf([ 'rustdesk_key_dir %%TESTDIR%%/keys;',
		'rustdesk_database off;', @d ], srv_hbbs(1, 0));
}

sub start {
	$t->write_file_expand('nginx.conf', conf(@_));
	$t->run();
}

sub config_error {
	$t->write_file_expand('bad.conf', conf(@_));
	my ($rc, $out) = $t->test_config('bad.conf');
	return $rc ? $out : "accepted: $out";
}
