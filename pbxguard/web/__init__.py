"""`pbxguard web`: the admin's page over the call log (calls, captures, labels, caller-ID lists).

A process of its own, beside the daemon: it shares only the configuration and the call log, so a slow page
or a crash here never touches a call. Reading works without JavaScript (there is none); every change is a
form POST behind a login and a CSRF token.
"""
