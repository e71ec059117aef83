-- Issue 14: a campaign's variables may have defaults. A blank cell of an audience row takes
-- its variable's default instead of rejecting the row; an empty default ('') marks the
-- variable optional (it renders empty). {variable: default}; a variable absent from the
-- object has no default, and a blank cell for it still rejects the row.
ALTER TABLE campaigns ADD COLUMN variable_defaults jsonb NOT NULL DEFAULT '{}'
    CHECK (jsonb_typeof(variable_defaults) = 'object');
