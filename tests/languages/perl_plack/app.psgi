# A PSGI application for tests/languages/perl_plack.rs, served by Plack::Handler::FCGI (over FCGI.pm,
# over the project's libfcgi.so.0). Routes on PATH_INFO:
#   /hello         200 text/plain: PATH_INFO, SCRIPT_NAME, QUERY_STRING, REQUEST_METHOD, PID,
#                  psgi.version, psgi.streaming
#   /echo          POST: the body (psgi.input, CONTENT_LENGTH bytes) with X-Body-Length and
#                  X-Body-SHA256
#   /stream?gate=F the delayed-response interface with a writer: "chunk 1", then waits (at most
#                  20 s) until the file $ENV{PLACK_GATE_DIR}/F exists, then "chunk 2" and closes
#   /delayed       the delayed-response interface without a writer
#   /warn          writes a line to psgi.errors (a FastCGI stderr record), answers 200
#   /die           dies: Plack answers 500
#   anything else  404
use strict;
use warnings;
use Digest::SHA;
use Time::HiRes ();

# FCGI.pm's PRINT flushes (FCGX_FFlush) when $| is true, and it reads the $| of the selected
# handle (STDOUT), not of its own tied handle: Plack::Handler::FCGI's autoflush(1) on its
# output handle does not reach it, so without this line a streamed response leaves only when
# the request ends (the same on Debian's libfcgi). With it every writer->write is sent at once.
$| = 1;

my $app = sub {
    my $env  = shift;
    my $path = $env->{PATH_INFO} // "";
    if ($path eq "/hello") {
        my $text = join("", map { "$_=" . ($env->{$_} // "") . "\n" }
                qw(PATH_INFO SCRIPT_NAME QUERY_STRING REQUEST_METHOD))
            . "PID=$$\n"
            . "PSGI_VERSION=" . join(".", @{ $env->{'psgi.version'} }) . "\n"
            . "PSGI_STREAMING=" . ($env->{'psgi.streaming'} ? 1 : 0) . "\n";
        return [200, ['Content-Type' => 'text/plain', 'X-Route' => 'hello'], [$text]];
    }
    if ($path eq "/echo") {
        return [405, ['Content-Type' => 'text/plain'], ["POST only\n"]]
            unless $env->{REQUEST_METHOD} eq "POST";
        my $left = $env->{CONTENT_LENGTH} // 0;
        my $body = "";
        while ($left > 0) {
            my $n = $env->{'psgi.input'}->read(my $buf, $left > 65536 ? 65536 : $left);
            last if !$n;
            $body .= $buf;
            $left -= $n;
        }
        return [200, [
            'Content-Type'  => 'application/octet-stream',
            'X-Body-Length' => length($body),
            'X-Body-SHA256' => Digest::SHA::sha256_hex($body),
        ], [$body]];
    }
    if ($path eq "/stream") {
        my ($gate) = ($env->{QUERY_STRING} // "") =~ /(?:^|&)gate=([\w.-]+)/;
        my $file = ($ENV{PLACK_GATE_DIR} // "/nonexistent") . "/" . ($gate // "none");
        return sub {
            my $respond = shift;
            my $w = $respond->([200, ['Content-Type' => 'text/plain']]);
            $w->write("chunk 1\n");
            my $waited = 0;
            while (!-e $file && $waited < 2000) {
                Time::HiRes::sleep(0.01);
                $waited++;
            }
            $w->write(-e $file ? "chunk 2\n" : "no gate\n");
            $w->close;
        };
    }
    if ($path eq "/delayed") {
        return sub {
            my $respond = shift;
            $respond->([202, ['Content-Type' => 'text/plain'], ["delayed\n"]]);
        };
    }
    if ($path eq "/warn") {
        $env->{'psgi.errors'}->print("app.psgi: warning through psgi.errors\n");
        return [200, ['Content-Type' => 'text/plain'], ["warned\n"]];
    }
    if ($path eq "/die") {
        die "app.psgi: died on purpose\n";
    }
    return [404, ['Content-Type' => 'text/plain'], ["not found: $path\n"]];
};
