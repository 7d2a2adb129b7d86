"""Issue 15: one heartbeat row per server process, and usernames unique ignoring case.

Follows 0002_private_rooms (re-pointed when the two branches met).
"""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("chat", "0002_private_rooms"),
    ]

    operations = [
        migrations.CreateModel(
            name="Server",
            fields=[
                ("server_id", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("seen_at", models.DateTimeField(db_index=True)),
            ],
        ),
        migrations.AddConstraint(
            model_name="user",
            constraint=models.UniqueConstraint(django.db.models.functions.text.Lower("username"), name="chat_user_username_lower_unique"),
        ),
    ]
