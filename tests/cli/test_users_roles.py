"""`broadcaster users roles`: an admin replaces the roles of a user the district file does not
list, as the console's user page does (identity.set_roles); the change holds at once, and the
last enabled admin keeps the admin role."""

from __future__ import annotations


def test_an_admin_changes_roles_and_the_last_admin_keeps_admin(run, tokens):
    admin = run.json("users", "add", "it")["token"]  # listed in the district file as admin
    as_it = ("--as", "it")
    zoe = run.json("users", "add", "zoe", "--role", "admin", *as_it, token=admin)["token"]
    roles = run.json("users", "roles", "zoe", "--role", "approver", "--role", "author",
                     *as_it, token=admin)  # fmt: skip
    assert roles == {"name": "zoe", "roles": ["author", "approver"]}  # in the district's order
    refused = run("users", "disable", "ben", "--as", "zoe", token=zoe)
    assert refused.exit_code == 2
    assert "zoe (author, approver) may not manage users" in refused.stderr  # at once

    listed = run("users", "roles", "ben", "--role", "admin", *as_it, token=admin)
    assert listed.exit_code == 2
    assert listed.stderr.endswith("ben's roles are set in the district config (approver); "
                                  "change them there\n")  # fmt: skip
    assert run("users", "roles", "zoe", *as_it, token=admin).exit_code == 2  # no role
    unknown = run("users", "roles", "zoe", "--role", "root", *as_it, token=admin)
    assert unknown.exit_code == 2 and "unknown role 'root'" in unknown.stderr

    # zoe, admin again, is the other admin; with `it` disabled, zoe is the last one.
    run.json("users", "roles", "zoe", "--role", "admin", *as_it, token=admin)
    assert run("users", "disable", "it", "--as", "zoe", token=zoe).exit_code == 0
    last = run("users", "roles", "zoe", "--role", "author", "--as", "zoe", token=zoe)
    assert last.exit_code == 2 and "zoe is the last enabled admin" in last.stderr
    assert [u["roles"] for u in run.json("users", "list") if u["name"] == "zoe"] == [["admin"]]
