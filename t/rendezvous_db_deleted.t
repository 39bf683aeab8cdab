#!/usr/bin/perl

# The database file deleted while nginx runs: writes are refused (the
# RegisterPk gets SERVER_ERROR, a log line says why) rather than taken by
# a file nobody will see again, and a reload creates the file anew, with
# its tables, where the next registrations are written.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port wait_value /;
use RustDesk::Conf;
use RustDesk::Client;
use RustDesk::Sqlite qw/ has_sqlite3 sql /;

my $t = Test::Nginx->new()->has();

Test::More::plan(skip_all => 'no sqlite3 CLI') unless has_sqlite3();

$t->plan(7)->allow_log(qr/database write of peer .* failed/);

my $db = $t->testdir() . '/keys/db_v2.sqlite3';

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
], srv_rendezvous(0)));

$t->run();

is(reg_pk('gone-001'), 0, 'registered');
is(wait_value(sub { sql($db, "select count(*) from peer") }, 1), 1,
	'... and written');

unlink $db, "$db-wal", "$db-shm";

is(reg_pk('gone-002'), 7, 'the file deleted: RegisterPk gets SERVER_ERROR');
ok($t->wait_log(qr/database write of peer "gone-002" failed: the database file was deleted/,
	1, 5), '... and the reason is logged');

$t->reload();

ok(-s $db, 'a reload creates the file again');
is(reg_pk('gone-003'), 0, 'then RegisterPk is OK');
is(wait_value(sub { sql($db, "select id from peer") }, 'gone-003'),
	'gone-003', '... and written in the new file');

###############################################################################

# The result of a RegisterPk of a new id from a new socket.
sub reg_pk {
	my ($id) = @_;
	my $u = RustDesk::Client->udp(port(0));

	$u->send_msg(register_pk => { id => $id, uuid => "u-$id",
		pk => 'k' x 32 });

	my ($type, $m) = $u->recv_msg(10);
	return $type // 'timeout' unless ($type // '') eq 'register_pk_response';
	return $m->{result} // 0;
}

###############################################################################
