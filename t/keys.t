#!/usr/bin/perl

# Key files (PROTOCOL.md section 5): generated once at configuration load
# with the reference's formats and modes, reused on restart and reload,
# never replaced when malformed; a key given as a base64 secret key.

use warnings;
use strict;

use Test::More;
use MIME::Base64 qw/ decode_base64 encode_base64 /;
use Crypt::PK::Ed25519;

use lib 't/lib';
use Test::Nginx;
use RustDesk::Conf;

my $t = Test::Nginx->new()->has()->plan(25);
my $d = $t->testdir();

$t->write_file_expand('nginx.conf',
	stream_conf([ 'rustdesk_key_dir %%TESTDIR%%/keys;' ], srv_blank(0)));

$t->run();

my $sk_file = "$d/keys/id_ed25519";
my $pk_file = "$d/keys/id_ed25519.pub";

ok(-f $sk_file, 'secret key file made');
ok(-f $pk_file, 'public key file made');
is(sprintf('%04o', (stat $sk_file)[2] & 07777), '0600', 'secret key mode');
is(sprintf('%04o', (stat "$d/keys")[2] & 07777), '0700', 'key dir mode');

my $sk_b64 = $t->read_file('keys/id_ed25519');
my $pk_b64 = $t->read_file('keys/id_ed25519.pub');

like($sk_b64, qr{^[A-Za-z0-9+/]{86}==$}, 'secret key is base64, no newline');
like($pk_b64, qr{^[A-Za-z0-9+]{43}=$}, 'public key is base64, no / nor :');

my $sk = decode_base64($sk_b64);
my $pk = decode_base64($pk_b64);

is(length $sk, 64, 'secret key 64 bytes');
is(length $pk, 32, 'public key 32 bytes');
is(unpack('H*', substr($sk, 32)), unpack('H*', $pk), 'secret key ends in pk');

# an independent Ed25519: the seed must give the same public key

my $key = Crypt::PK::Ed25519->new();
$key->import_key_raw(substr($sk, 0, 32), 'private');
is(unpack('H*', $key->export_key_raw('public')), unpack('H*', $pk),
	'seed derives the public key');

like($t->read_file('stderr') . $t->read_file('error.log'),
	qr/generated key pair in "\Q$d\E\/keys", public key \Q$pk_b64\E/,
	'generation logged with the public key');

# restart and reload keep the pair

$t->stop();
unlink "$d/stderr";
$t->run();

is($t->read_file('keys/id_ed25519'), $sk_b64, 'restart: same secret key');
is($t->read_file('keys/id_ed25519.pub'), $pk_b64, 'restart: same public key');
unlike($t->read_file('stderr'), qr/generated key pair/, 'restart: no new pair');

$t->reload();
is($t->read_file('keys/id_ed25519'), $sk_b64, 'reload: same secret key');

# a missing public key file is written again from the secret key

unlink $pk_file;
$t->reload();
is($t->read_file('keys/id_ed25519.pub'), $pk_b64, 'missing .pub rewritten');

# a secret key file with a trailing newline (edited by hand) still loads

$t->write_file('keys/id_ed25519', "$sk_b64\n");
my ($rc, $out) = $t->test_config();
is($rc, 0, 'trailing newline tolerated') or diag($out);

# a malformed secret key is a clear startup error and is left as it is

my $bad = encode_base64(substr($sk, 0, 32), '');
$t->write_file('keys/id_ed25519', $bad);
($rc, $out) = $t->test_config();
isnt($rc, 0, 'malformed key: nginx -t fails');
like($out, qr/\[emerg\].*malformed private key in "\Q$sk_file\E"/,
	'malformed key: reason');
is($t->read_file('keys/id_ed25519'), $bad, 'malformed key: not replaced');

# a secret key whose public half does not match its seed is refused too

my $other = Crypt::PK::Ed25519->new()->generate_key();
$t->write_file('keys/id_ed25519', encode_base64(substr($sk, 0, 32)
	. $other->export_key_raw('public'), ''));
($rc, $out) = $t->test_config();
like($out, qr/malformed private key/, 'mismatched halves refused');

$t->write_file('keys/id_ed25519', $sk_b64);

# rustdesk_key given as a base64 secret key: no files needed

$t->write_file_expand('sk.conf', <<"EOF");
%%TEST_GLOBALS%%
stream {
    rustdesk_key_dir %%TESTDIR%%/keys2;
    rustdesk_key $sk_b64;
}
EOF

($rc, $out) = $t->test_config('sk.conf');
is($rc, 0, 'base64 secret key accepted') or diag($out);
ok(!-e "$d/keys2", 'base64 secret key: no key files made');

# the relay alone accepts any key by default: it makes no files; with "_"
# it uses the pair

$t->write_file_expand('relay.conf', <<'EOF');
load_module %%STREAM%%;
load_module %%RELAY%%;
error_log %%TESTDIR%%/relay.log;
events {}
stream {
    rustdesk_key_dir %%TESTDIR%%/keys3;
}
EOF

($rc, $out) = $t->test_config('relay.conf');
ok($rc == 0 && !-e "$d/keys3", 'relay alone, no key: no files');

my $conf = $t->read_file('relay.conf');
$conf =~ s/(keys3;)/$1 rustdesk_key _;/;
$t->write_file('relay.conf', $conf);

($rc, $out) = $t->test_config('relay.conf');
ok($rc == 0 && -s "$d/keys3/id_ed25519", 'relay alone, key "_": pair made')
	or diag($out);
